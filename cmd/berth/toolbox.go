package main

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"path"
	"strings"
	"time"

	"github.com/berthrt/berth"
	"github.com/berthrt/berth/internal/toolbox"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"
)

// toolboxImageCommand makes a tiny image whose only program is this very
// binary, as the multi-call toolbox (/bin/toolbox and one link per applet):
// a container can be run on a machine with no registry in reach.
func toolboxImageCommand(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "toolbox-image [REF]",
		Short: "Make a tiny runnable image from berth's own toolbox (no registry needed)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref := "berth/toolbox:latest"
			if len(args) == 1 {
				ref = args[0]
			}
			layer, err := toolboxLayer()
			if err != nil {
				return err
			}
			rt, err := g.runtime()
			if err != nil {
				return err
			}
			defer rt.Close()
			img, err := rt.Import(cmd.Context(), bytes.NewReader(layer), berth.ImportOptions{
				Ref: ref,
				Config: ocispec.ImageConfig{
					Cmd: []string{"/bin/toolbox", "echo", "hello from berth's toolbox"},
					Env: []string{"PATH=/bin"},
				},
			})
			if err != nil {
				return err
			}
			fmt.Println(img.Name)
			return nil
		},
	}
}

// toolboxLayer returns a rootfs tar holding this executable as the toolbox.
func toolboxLayer() ([]byte, error) {
	exe, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		return nil, err
	}
	if f, err := elf.NewFile(bytes.NewReader(exe)); err == nil {
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				return nil, fmt.Errorf("toolbox-image: this berth binary is dynamically linked; build it with CGO_ENABLED=0: %w", berth.ErrUnsupported)
			}
		}
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Unix(0, 0)
	add := func(h *tar.Header, data []byte) error {
		h.ModTime = now
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	dirs := []struct {
		name string
		mode int64
	}{{"bin", 0o755}, {"etc", 0o755}, {"tmp", 0o1777}, {"root", 0o700}, {"home", 0o755}, {"home/tester", 0o755}}
	for _, d := range dirs {
		h := &tar.Header{Name: d.name + "/", Typeflag: tar.TypeDir, Mode: d.mode}
		if d.name == "home/tester" {
			h.Uid, h.Gid = 1000, 1000
		}
		if err := add(h, nil); err != nil {
			return nil, err
		}
	}
	if err := add(&tar.Header{Name: "bin/toolbox", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(exe))}, exe); err != nil {
		return nil, err
	}
	for _, a := range toolbox.Applets() {
		if err := add(&tar.Header{Name: path.Join("bin", a), Typeflag: tar.TypeSymlink, Linkname: "toolbox", Mode: 0o777}, nil); err != nil {
			return nil, err
		}
	}
	passwd := strings.Join([]string{
		"root:x:0:0:root:/root:/bin/sh",
		"daemon:x:1:1:daemon:/usr/sbin:/bin/false",
		"tester:x:1000:1000:tester:/home/tester:/bin/sh",
		"nobody:x:65534:65534:nobody:/nonexistent:/bin/false", ""}, "\n")
	group := strings.Join([]string{"root:x:0:", "daemon:x:1:", "tty:x:5:", "tester:x:1000:", "extra:x:2000:tester", "nogroup:x:65534:", ""}, "\n")
	for _, f := range [][2]string{{"etc/passwd", passwd}, {"etc/group", group}} {
		if err := add(&tar.Header{Name: f[0], Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(f[1]))}, []byte(f[1])); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
