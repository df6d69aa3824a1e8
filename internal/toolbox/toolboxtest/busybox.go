package toolboxtest

import (
	"bytes"
	"debug/elf"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/berthrt/berth/internal/imagebuild"
	"github.com/berthrt/berth/internal/testutil"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// BusyboxImage returns an image of the host's static busybox (Debian's
// busybox-static, which .ci/run installs) for tests that need a shell: one
// gzip layer made by imagebuild.Busybox with a link for every applet that
// `busybox --list` prints, Env PATH=/bin, Cmd ["/bin/sh"]. It fails under
// CI and skips elsewhere when busybox is missing, and fails when it is not
// statically linked.
func BusyboxImage(tb testing.TB) imagebuild.Image {
	tb.Helper()
	return imagebuild.Image{
		Layers: []imagebuild.Layer{{Tar: imagebuild.LayerTar(BusyboxFiles(tb))}},
		Config: ocispec.ImageConfig{Cmd: []string{"/bin/sh"}, Env: []string{"PATH=/bin"}},
	}
}

// BusyboxFiles returns imagebuild.Busybox of the host's static busybox
// with every applet that `busybox --list` prints (see BusyboxImage).
func BusyboxFiles(tb testing.TB) []imagebuild.File {
	tb.Helper()
	path := testutil.RequiresCommand(tb, "busybox")
	bin, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			tb.Fatalf("%s is dynamically linked; install busybox-static", path)
		}
	}
	out, err := exec.Command(path, "--list").Output()
	if err != nil {
		tb.Fatalf("busybox --list: %v", err)
	}
	return imagebuild.Busybox(bin, strings.Fields(string(out)))
}

// BusyboxRootfs populates dir with the files of BusyboxImage (see Extract).
func BusyboxRootfs(tb testing.TB, dir string) {
	tb.Helper()
	Extract(tb, dir, BusyboxFiles(tb))
}
