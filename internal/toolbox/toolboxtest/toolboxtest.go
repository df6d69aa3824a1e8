// Package toolboxtest builds the toolbox binary for tests and makes a
// rootfs directory, an image or an OCI layout of it.
//
// Binary compiles ./internal/toolbox/cmd/toolbox once per test process
// (static: CGO_ENABLED=0, GOOS=linux) and caches the result under
// os.TempDir()/berth-toolbox/<key>, where key hashes the toolbox sources,
// go.mod, go.sum, the Go version and GOARCH; a file lock makes test packages
// that run in parallel build it once between them.
package toolboxtest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthrt/berth/internal/imagebuild"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

var build struct {
	once sync.Once
	path string
	err  error
}

// Binary returns the path of a static toolbox binary, building it on first
// use. The file is shared: do not modify it.
func Binary(tb testing.TB) string {
	tb.Helper()
	build.once.Do(func() {
		build.path, build.err = buildBinary()
	})
	if build.err != nil {
		tb.Fatalf("toolbox binary: %v", build.err)
	}
	return build.path
}

// Bytes returns the content of the toolbox binary (see Binary).
func Bytes(tb testing.TB) []byte {
	tb.Helper()
	b, err := os.ReadFile(Binary(tb))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// moduleRoot finds the directory of go.mod: from this source file when the
// tests run from a source tree, else from `go list -m`.
func moduleRoot() (string, error) {
	if _, file, _, ok := runtime.Caller(0); ok {
		root := filepath.Join(filepath.Dir(file), "..", "..", "..")
		if _, err := os.Stat(filepath.Join(root, "internal", "toolbox", "cmd", "toolbox")); err == nil {
			return filepath.Clean(root), nil
		}
	}
	out, err := exec.Command(goTool(), "list", "-m", "-f", "{{.Dir}}", "github.com/berthrt/berth").Output()
	if err != nil {
		return "", fmt.Errorf("finding the module root: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

func goTool() string {
	if p := filepath.Join(runtime.GOROOT(), "bin", "go"); fileExists(p) {
		return p
	}
	return "go"
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// sourceKey hashes everything the binary is built from.
func sourceKey(root string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s %s\n", runtime.Version(), runtime.GOARCH)
	var files []string
	for _, dir := range []string{"internal/toolbox", "internal/toolbox/cmd/toolbox"} {
		m, err := filepath.Glob(filepath.Join(root, dir, "*.go"))
		if err != nil {
			return "", err
		}
		for _, f := range m {
			if !strings.HasSuffix(f, "_test.go") {
				files = append(files, f)
			}
		}
	}
	slices.Sort(files)
	files = append(files, filepath.Join(root, "go.mod"), filepath.Join(root, "go.sum"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil && !os.IsNotExist(err) {
			return "", err
		}
		fmt.Fprintf(h, "%s %d\n", filepath.Base(f), len(data))
		h.Write(data)
	}
	return hex.EncodeToString(h.Sum(nil))[:20], nil
}

func buildBinary() (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	key, err := sourceKey(root)
	if err != nil {
		return "", err
	}
	cache := filepath.Join(os.TempDir(), "berth-toolbox")
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", err
	}
	out := filepath.Join(cache, key, "toolbox")
	if fileExists(out) {
		return out, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	unlock, err := lockFile(ctx, filepath.Join(cache, key+".lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if fileExists(out) { // built by another process while we waited
		return out, nil
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", err
	}
	tmp := out + ".tmp"
	cmd := exec.CommandContext(ctx, goTool(), "build", "-trimpath", "-buildvcs=false",
		"-ldflags=-s -w", "-o", tmp, "./internal/toolbox/cmd/toolbox")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH, "GOFLAGS="+staticGoflags())
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build toolbox: %v\n%s", err, b)
	}
	if err := os.Rename(tmp, out); err != nil {
		return "", err
	}
	pruneCache(cache, key)
	return out, nil
}

// staticGoflags returns $GOFLAGS without the flags that need cgo.
func staticGoflags() string {
	var keep []string
	for _, f := range strings.Fields(os.Getenv("GOFLAGS")) {
		switch f {
		case "-race", "-msan", "-asan":
		default:
			keep = append(keep, f)
		}
	}
	return strings.Join(keep, " ")
}

// pruneCache removes builds of other sources made more than a day ago, so
// a developer's temporary directory does not fill up with one binary per
// edit (a test process still using one keeps its open copy).
func pruneCache(cache, keep string) {
	ents, err := os.ReadDir(cache)
	if err != nil {
		return
	}
	for _, e := range ents {
		key := strings.TrimSuffix(e.Name(), ".lock")
		if key == keep || !e.IsDir() {
			continue
		}
		info, err := e.Info()
		if err != nil || time.Since(info.ModTime()) < 24*time.Hour {
			continue
		}
		os.RemoveAll(filepath.Join(cache, key))
		os.Remove(filepath.Join(cache, key+".lock"))
	}
}

// Rootfs populates dir as a minimal toolbox rootfs: the files of
// imagebuild.Toolbox (/bin/toolbox and a symlink /bin/<applet> for every
// applet, /etc/passwd and /etc/group as toolbox.Passwd and toolbox.Group,
// /root, /home/tester owned by 1000:1000 when running as root, /tmp with
// mode 1777 and empty /proc, /sys and /dev), written by Extract.
func Rootfs(tb testing.TB, dir string) {
	tb.Helper()
	Extract(tb, dir, imagebuild.Toolbox(Bytes(tb)))
}

// Image returns a toolbox image: one gzip layer made by
// imagebuild.Toolbox, Env PATH=/bin, Cmd ["/bin/toolbox", "true"], for the
// builder's GOARCH. Change the returned value's fields before building to
// vary it, e.g. img.Config.Cmd or img.Format.
func Image(tb testing.TB) imagebuild.Image {
	tb.Helper()
	return imagebuild.Image{
		Layers: []imagebuild.Layer{{Tar: imagebuild.LayerTar(imagebuild.Toolbox(Bytes(tb)))}},
		Config: ocispec.ImageConfig{Cmd: []string{"/bin/toolbox", "true"}, Env: []string{"PATH=/bin"}},
	}
}

var built struct {
	mu sync.Mutex
	b  imagebuild.Built
}

// Built returns Image(tb), built. The build is made once per test process;
// each call returns its own Blobs map (the blob bytes are shared: replace a
// blob to tamper with it, do not modify it in place).
func Built(tb testing.TB) imagebuild.Built {
	tb.Helper()
	built.mu.Lock()
	defer built.mu.Unlock()
	if built.b.Blobs == nil {
		b, err := imagebuild.Build(Image(tb))
		if err != nil {
			tb.Fatal(err)
		}
		built.b = b
	}
	b := built.b
	b.Blobs = maps.Clone(b.Blobs)
	return b
}

// Layout writes the toolbox image (Built) into a new OCI layout under
// tb.TempDir(), listed as "latest", and returns the layout's directory.
func Layout(tb testing.TB) string {
	tb.Helper()
	dir := tb.TempDir()
	if err := imagebuild.WriteOCILayout(dir, "latest", Built(tb)); err != nil {
		tb.Fatal(err)
	}
	return dir
}
