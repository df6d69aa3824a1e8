//go:build linux

package berth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/berthrt/berth/internal/fsutil"
	"github.com/berthrt/berth/registryclient"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// PushOptions configure Push. The zero value is the default.
type PushOptions struct{}

// storeSource serves an image's blobs from the content store for a push.
type storeSource struct{ rt *Runtime }

func (s storeSource) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	return s.rt.store.Open(desc.Digest)
}

// Push uploads the stored image ref names to its registry (blobs the
// repository has already are skipped) and returns the manifest digest.
func (rt *Runtime) Push(ctx context.Context, ref string, opts PushOptions) (digest.Digest, error) {
	img, err := rt.Image(ctx, ref)
	if err != nil {
		return "", fmt.Errorf("push: %w", err)
	}
	r, err := registryclient.ParseReference(img.Name)
	if err != nil {
		r, err = registryclient.ParseReference(ref)
		if err != nil {
			return "", fmt.Errorf("push %s: %w", ref, err)
		}
	}
	for _, l := range img.Manifest.Layers {
		if !rt.store.Has(l.Digest) {
			return "", fmt.Errorf("push %s: layer blob %s is not stored here (the image was loaded without it): %w", ref, l.Digest, ErrNotFound)
		}
	}
	info, err := rt.store.Info(img.Digest)
	if err != nil {
		return "", fmt.Errorf("push %s: %w", ref, err)
	}
	mt := img.Manifest.MediaType
	if mt == "" {
		mt = ocispec.MediaTypeImageManifest
	}
	root := ocispec.Descriptor{MediaType: mt, Digest: img.Digest, Size: info.Size}
	if err := rt.reg.Push(ctx, r, root, storeSource{rt}); err != nil {
		return "", err
	}
	return img.Digest, nil
}

// LoginOptions configure Login.
type LoginOptions struct {
	// Store saves the credentials in the docker CLI's config.json
	// ($DOCKER_CONFIG or ~/.docker) after they were accepted.
	Store bool
}

// Login checks credentials against a registry (wrapping ErrUnauthorized
// when refused) and, with Store, saves them for later pulls and pushes.
func (rt *Runtime) Login(ctx context.Context, host, user, password string, opts LoginOptions) error {
	cred := registryclient.Credential{Username: user, Password: password}
	if err := rt.reg.Login(ctx, host, cred); err != nil {
		return err
	}
	if !opts.Store {
		return nil
	}
	return storeDockerAuth(host, user, password)
}

// storeDockerAuth adds an "auths" entry to the docker CLI's config file,
// keeping everything else in it.
func storeDockerAuth(host, user, password string) error {
	dir := os.Getenv("DOCKER_CONFIG")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return err
		}
		dir = filepath.Join(home, ".docker")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	path := filepath.Join(dir, "config.json")
	doc := map[string]any{}
	if b, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(b, &doc); err != nil {
			return fmt.Errorf("%s: %v: %w", path, err, ErrInvalid)
		}
	}
	auths, _ := doc["auths"].(map[string]any)
	if auths == nil {
		auths = map[string]any{}
	}
	key := host
	if host == "docker.io" {
		key = "https://index.docker.io/v1/"
	}
	auths[key] = map[string]any{"auth": base64.StdEncoding.EncodeToString([]byte(user + ":" + password))}
	doc["auths"] = auths
	b, err := json.MarshalIndent(doc, "", "\t")
	if err != nil {
		return err
	}
	return fsutil.WriteFile(path, b, 0o600)
}
