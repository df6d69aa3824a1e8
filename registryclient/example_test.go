package registryclient_test

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/berthrt/berth/registryclient"
)

func ExampleParseReference() {
	for _, s := range []string{"alpine", "user/app:1.2", "localhost:5000/team/app", "ghcr.io/o/app@sha256:4f1b0cb50fb5bb5c3bde4a3b3e4a2b0f4c4a1b5d2c6e7f8091a2b3c4d5e6f708"} {
		ref, err := registryclient.ParseReference(s)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Printf("%s | %s | %s\n", ref.Registry, ref.Repository, ref.Familiar())
	}
	_, err := registryclient.ParseReference("Alpine")
	fmt.Println(err)
	// Output:
	// docker.io | library/alpine | alpine:latest
	// docker.io | user/app | user/app:1.2
	// localhost:5000 | team/app | localhost:5000/team/app:latest
	// ghcr.io | o/app | ghcr.io/o/app@sha256:4f1b0cb50fb5bb5c3bde4a3b3e4a2b0f4c4a1b5d2c6e7f8091a2b3c4d5e6f708
	// invalid reference "Alpine": repository name "library/Alpine" must be lowercase: invalid argument
}

// Pull the host platform's image of a reference: manifest, config, layers.
func ExampleClient_FetchImageManifest() {
	ctx := context.Background()
	c := &registryclient.Client{Credentials: registryclient.DockerConfig{}}
	ref, err := registryclient.ParseReference("127.0.0.1:5000/team/app:1")
	if err != nil {
		panic(err)
	}
	desc, manifest, err := c.FetchImageManifest(ctx, ref, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(desc.Digest, len(manifest))
	// ... decode the manifest, then for each layer:
	rc, err := c.OpenBlob(ctx, ref, desc, 0) // here: the manifest itself, as a blob
	if err != nil {
		fmt.Println(err)
		return
	}
	defer rc.Close()
	rc.(*registryclient.BlobReader).SetProgress(func(off int64) { fmt.Fprintf(os.Stderr, "\r%d bytes", off) })
	if _, err := io.Copy(io.Discard, rc); err != nil { // verified at EOF
		fmt.Println(err)
	}
}
