package main

import (
	"bytes"
	"debug/elf"
	"fmt"
	"os"

	"github.com/berthrt/berth"
	"github.com/berthrt/berth/internal/imagebuild"
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
	// The same rootfs the tests' toolbox image has: /bin/toolbox, a link
	// per applet, /etc/passwd and /etc/group.
	return imagebuild.LayerTar(imagebuild.Toolbox(exe)), nil
}
