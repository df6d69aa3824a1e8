// Command berth is a docker-like command line over the berth library, for
// people, scripts and benchmarks. It uses only berth's exported API, with one
// exception: it is also a multi-call binary that behaves as berth's test
// "toolbox" (internal/toolbox) when invoked under an applet's name, and
// `berth toolbox-image` lays itself out as that image (internal/imagebuild),
// which is how a container runs with no registry in reach.
//
// Exit status: 0 on success; the container's status for run and start -a;
// 125 with a one-line error when berth itself fails.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/berthrt/berth"
	"github.com/berthrt/berth/internal/toolbox"
	_ "github.com/berthrt/berth/internal/toolbox/trivial" // true and false before the rest initialises
	"github.com/spf13/cobra"
)

// exitCode carries a status for main to exit with, without an error line.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

type globalFlags struct {
	root     string
	runDir   string
	insecure []string
	mirrors  []string
	debug    bool
}

func main() {
	berth.Init()
	if toolbox.IsApplet(filepath.Base(os.Args[0])) {
		os.Exit(toolbox.Main(os.Args))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCommand().ExecuteContext(ctx)
	stop()
	var code exitCode
	switch {
	case err == nil:
	case errors.As(err, &code):
		os.Exit(int(code))
	default:
		fmt.Fprintln(os.Stderr, "berth:", err)
		os.Exit(125)
	}
}

func newRootCommand() *cobra.Command {
	g := &globalFlags{}
	root := &cobra.Command{
		Use:           "berth",
		Short:         "Run Linux containers without a daemon",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	def := os.Getenv("BERTH_ROOT")
	if def == "" {
		def = "/var/lib/berth"
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.root, "root", def, "root directory of berth's state (env BERTH_ROOT)")
	pf.StringVar(&g.runDir, "run-dir", "", "host-wide run directory (default /run/berth)")
	pf.StringSliceVar(&g.insecure, "insecure-registry", nil, "registry host to reach over plain HTTP")
	pf.StringSliceVar(&g.mirrors, "registry-mirror", nil, "mirror for docker.io")
	pf.BoolVar(&g.debug, "debug", false, "log debug output to stderr")
	root.AddCommand(imageCommands(g)...)
	root.AddCommand(containerCommands(g)...)
	root.AddCommand(networkCommand(g))
	return root
}

// runtime opens the berth runtime the flags describe.
func (g *globalFlags) runtime() (*berth.Runtime, error) {
	cfg := berth.Config{
		Root:               g.root,
		RunDir:             g.runDir,
		InsecureRegistries: g.insecure,
		CgroupParent:       os.Getenv("BERTH_CGROUP_PARENT"),
		RegistryMirrors:    g.mirrors,
		// One container per process: a spare init would never be used.
		NoSpareInit: true,
	}
	if g.debug {
		cfg.Logger = debugLogger()
	}
	return berth.New(cfg)
}

// withRuntime makes a cobra RunE that opens the runtime for fn and closes
// it afterwards.
func (g *globalFlags) withRuntime(fn func(cmd *cobra.Command, rt *berth.Runtime, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		rt, err := g.runtime()
		if err != nil {
			return err
		}
		defer rt.Close()
		return fn(cmd, rt, args)
	}
}

// withContainer makes a cobra RunE for a command whose argument n names a
// container.
func (g *globalFlags) withContainer(n int, fn func(cmd *cobra.Command, c *berth.Container, args []string) error) func(*cobra.Command, []string) error {
	return g.withRuntime(func(cmd *cobra.Command, rt *berth.Runtime, args []string) error {
		c, err := rt.Container(cmd.Context(), args[n])
		if err != nil {
			return err
		}
		return fn(cmd, c, args)
	})
}
