package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/berthrt/berth"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

func debugLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

func imageCommands(g *globalFlags) []*cobra.Command {
	return []*cobra.Command{
		pullCommand(g), imagesCommand(g), rmiCommand(g), tagCommand(g),
		pushCommand(g), loginCommand(g), saveCommand(g), loadCommand(g),
		importCommand(g), toolboxImageCommand(g),
	}
}

func pullCommand(g *globalFlags) *cobra.Command {
	var platform string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "pull [--platform os/arch[/variant]] REF",
		Short: "Pull an image from a registry",
		Args:  cobra.ExactArgs(1),
		RunE: g.withRuntime(func(cmd *cobra.Command, rt *berth.Runtime, args []string) error {
			opts := berth.PullOptions{Platform: platform}
			var bars *progressBars
			if !quiet && isTerminal(os.Stderr) {
				bars = newProgressBars(os.Stderr)
				opts.ProgressFunc = bars.update
			}
			img, err := rt.Pull(cmd.Context(), args[0], opts)
			if bars != nil {
				bars.wait()
			}
			if err != nil {
				return err
			}
			fmt.Printf("%s\n", img.Name)
			fmt.Printf("Digest: %s\n", img.Digest)
			return nil
		}),
	}
	cmd.Flags().StringVar(&platform, "platform", "", "platform os/arch[/variant] (default: this host's)")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress output")
	return cmd
}

func imagesCommand(g *globalFlags) *cobra.Command {
	var quiet bool
	cmd := &cobra.Command{
		Use:     "images",
		Aliases: []string{"image ls"},
		Short:   "List images",
		Args:    cobra.NoArgs,
		RunE: g.withRuntime(func(cmd *cobra.Command, rt *berth.Runtime, args []string) error {
			imgs, err := rt.Images(cmd.Context())
			if err != nil {
				return err
			}
			if quiet {
				for _, i := range imgs {
					fmt.Println(i.ID().Encoded()[:12])
				}
				return nil
			}
			tw := newTable("REPOSITORY:TAG\tIMAGE ID\tCREATED\tSIZE")
			for _, i := range imgs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", i.Name, i.ID().Encoded()[:12],
					i.Created.Local().Format(time.DateTime), humanSize(i.Size))
			}
			return tw.Flush()
		}),
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "only image ids")
	return cmd
}

func rmiCommand(g *globalFlags) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "rmi [-f] IMAGE...",
		Short: "Remove images",
		Args:  cobra.MinimumNArgs(1),
		RunE: g.withRuntime(func(cmd *cobra.Command, rt *berth.Runtime, args []string) error {
			for _, a := range args {
				if err := rt.RemoveImage(cmd.Context(), a, berth.RemoveImageOptions{Force: force}); err != nil {
					return err
				}
				fmt.Println("Untagged:", a)
			}
			return nil
		}),
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "remove even when a container uses it")
	return cmd
}

func tagCommand(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "tag SOURCE TARGET",
		Short: "Give an image another name",
		Args:  cobra.ExactArgs(2),
		RunE: g.withRuntime(func(cmd *cobra.Command, rt *berth.Runtime, args []string) error {
			return rt.Tag(cmd.Context(), args[0], args[1])
		}),
	}
}

func pushCommand(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "push REF",
		Short: "Push an image to a registry",
		Args:  cobra.ExactArgs(1),
		RunE: g.withRuntime(func(cmd *cobra.Command, rt *berth.Runtime, args []string) error {
			d, err := rt.Push(cmd.Context(), args[0], berth.PushOptions{})
			if err != nil {
				return err
			}
			fmt.Printf("Digest: %s\n", d)
			return nil
		}),
	}
}

func loginCommand(g *globalFlags) *cobra.Command {
	var user, pass string
	var passStdin bool
	cmd := &cobra.Command{
		Use:   "login [-u USER] [-p PASS | --password-stdin] HOST",
		Short: "Check and store credentials for a registry",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if passStdin {
				b, err := io.ReadAll(os.Stdin)
				if err != nil {
					return err
				}
				pass = strings.TrimRight(string(b), "\r\n")
			}
			rt, err := g.runtime()
			if err != nil {
				return err
			}
			defer rt.Close()
			if err := rt.Login(cmd.Context(), args[0], user, pass, berth.LoginOptions{Store: true}); err != nil {
				return err
			}
			fmt.Println("Login Succeeded")
			return nil
		},
	}
	cmd.Flags().StringVarP(&user, "username", "u", "", "user name")
	cmd.Flags().StringVarP(&pass, "password", "p", "", "password")
	cmd.Flags().BoolVar(&passStdin, "password-stdin", false, "read the password from stdin")
	return cmd
}

func saveCommand(g *globalFlags) *cobra.Command {
	var out, format string
	cmd := &cobra.Command{
		Use:   "save -o FILE REF...",
		Short: "Write images to a docker-save (or OCI) tar archive",
		Args:  cobra.MinimumNArgs(1),
		RunE: g.withRuntime(func(cmd *cobra.Command, rt *berth.Runtime, args []string) error {
			if format == "oci-layout" {
				if out == "" {
					return fmt.Errorf("--format oci-layout needs -o DIR: %w", berth.ErrInvalid)
				}
				return rt.SaveLayout(cmd.Context(), out, args)
			}
			return writeOutput(out, func(w io.Writer) error {
				return rt.Save(cmd.Context(), w, args, berth.SaveOptions{Format: berth.ArchiveFormat(format)})
			})
		}),
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "file to write (default stdout)")
	cmd.Flags().StringVar(&format, "format", "docker", "archive format: docker, oci (tar) or oci-layout (a directory)")
	return cmd
}

func loadCommand(g *globalFlags) *cobra.Command {
	var in string
	cmd := &cobra.Command{
		Use:   "load -i FILE",
		Short: "Load images from a docker-save or OCI archive (or an OCI layout dir)",
		Args:  cobra.NoArgs,
		RunE: g.withRuntime(func(cmd *cobra.Command, rt *berth.Runtime, args []string) error {
			var imgs []*berth.Image
			if fi, err := os.Stat(in); err == nil && fi.IsDir() {
				imgs, err = rt.LoadLayout(cmd.Context(), in)
				if err != nil {
					return err
				}
			} else {
				r, closeIn, err := openInput(in)
				if err != nil {
					return err
				}
				defer closeIn()
				imgs, err = rt.Load(cmd.Context(), r)
				if err != nil {
					return err
				}
			}
			for _, i := range imgs {
				name := i.Name
				if name == "" {
					name = i.ID().String()
				}
				fmt.Println("Loaded image:", name)
			}
			return nil
		}),
	}
	cmd.Flags().StringVarP(&in, "input", "i", "", "archive file or OCI layout dir (default stdin)")
	return cmd
}

func importCommand(g *globalFlags) *cobra.Command {
	var changes []string
	cmd := &cobra.Command{
		Use:   "import FILE|- [REF]",
		Short: "Make an image from a flat rootfs tarball",
		Args:  cobra.RangeArgs(1, 2),
		RunE: g.withRuntime(func(cmd *cobra.Command, rt *berth.Runtime, args []string) error {
			in := args[0]
			if in == "-" {
				in = ""
			}
			r, closeIn, err := openInput(in)
			if err != nil {
				return err
			}
			defer closeIn()
			opts := berth.ImportOptions{}
			if len(args) == 2 {
				opts.Ref = args[1]
			}
			cfg, err := parseChanges(changes)
			if err != nil {
				return err
			}
			opts.Config = cfg
			img, err := rt.Import(cmd.Context(), r, opts)
			if err != nil {
				return err
			}
			fmt.Println(img.ID())
			return nil
		}),
	}
	cmd.Flags().StringArrayVarP(&changes, "change", "c", nil, "Dockerfile instruction for the config: CMD, ENTRYPOINT, ENV, WORKDIR, USER")
	return cmd
}

func humanSize(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.3g%cB", float64(n)/float64(div), "kMGTPE"[exp])
}

// newTable starts a column-aligned listing on stdout with its header line;
// Flush prints it.
func newTable(header string) *tabwriter.Writer {
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, header)
	return tw
}

// printJSON writes v to stdout as indented JSON, as inspect prints.
func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "    ")
	return enc.Encode(v)
}

// writeOutput runs fn on the file out (created), or on stdout when out is
// empty, and reports the file's close error too.
func writeOutput(out string, fn func(io.Writer) error) error {
	if out == "" {
		return fn(os.Stdout)
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if err := fn(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// openInput opens the file in, or stdin when in is empty.
func openInput(in string) (io.Reader, func(), error) {
	if in == "" {
		return os.Stdin, func() {}, nil
	}
	f, err := os.Open(in)
	if err != nil {
		return nil, nil, err
	}
	return f, func() { f.Close() }, nil
}
