// Command run is a complete small program that uses berth as a library: it
// pulls an image and runs a command in it, streaming the output, and exits
// with the container's status.
//
//	go build -o /tmp/run ./examples/run
//	/tmp/run -root /tmp/berth-example 127.0.0.1:5000/alpine:3.20 echo hi
//
// With no registry in reach, pass -image to run an image already in the
// root (for instance one made by `berth toolbox-image`).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/berthrt/berth"
)

func main() {
	berth.Init() // the container init, when this program is re-executed as one
	root := flag.String("root", "/var/lib/berth", "berth root directory")
	local := flag.Bool("image", false, "use an image already in the root instead of pulling")
	flag.Parse()
	if flag.NArg() < 1 {
		fmt.Fprintln(os.Stderr, "usage: run [-root DIR] [-image] REF [CMD...]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code, err := run(ctx, *root, *local, flag.Arg(0), flag.Args()[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "run:", err)
		os.Exit(125)
	}
	os.Exit(code)
}

func run(ctx context.Context, root string, local bool, ref string, cmd []string) (int, error) {
	rt, err := berth.New(berth.Config{Root: root})
	if err != nil {
		return 0, err
	}
	defer rt.Close()
	var img *berth.Image
	if local {
		img, err = rt.Image(ctx, ref)
	} else {
		img, err = rt.Pull(ctx, ref, berth.PullOptions{})
	}
	if err != nil {
		return 0, err
	}
	cfg := berth.ContainerConfig{Image: img, Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}
	if len(cmd) > 0 {
		cfg.Cmd = cmd
	}
	_, err = rt.Run(ctx, cfg)
	var ee *berth.ExitError
	if errors.As(err, &ee) {
		return ee.Code, nil
	}
	return 0, err
}
