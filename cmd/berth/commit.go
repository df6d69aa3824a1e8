package main

import (
	"fmt"
	"io"

	"github.com/berthrt/berth"
	"github.com/spf13/cobra"
)

func commitCommand(g *globalFlags) *cobra.Command {
	var message string
	var changes []string
	cmd := &cobra.Command{
		Use:   "commit [-m MSG] [-c INSTR] CONTAINER [REF]",
		Short: "Make an image from a container's changes",
		Args:  cobra.RangeArgs(1, 2),
		RunE: g.withContainer(0, func(cmd *cobra.Command, c *berth.Container, args []string) error {
			opts := berth.CommitOptions{Comment: message}
			if len(args) == 2 {
				opts.Ref = args[1]
			}
			if len(changes) > 0 {
				cfg, err := parseChanges(changes)
				if err != nil {
					return err
				}
				opts.Config = &cfg
			}
			img, err := c.Commit(cmd.Context(), opts)
			if err != nil {
				return err
			}
			fmt.Println(img.ID())
			return nil
		}),
	}
	cmd.Flags().StringVarP(&message, "message", "m", "", "commit message")
	cmd.Flags().StringArrayVarP(&changes, "change", "c", nil, "Dockerfile instruction for the new config")
	return cmd
}

func diffCommand(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "diff CONTAINER",
		Short: "List changed files (A added, C changed, D deleted)",
		Args:  cobra.ExactArgs(1),
		RunE: g.withContainer(0, func(cmd *cobra.Command, c *berth.Container, args []string) error {
			changes, err := c.Diff(cmd.Context())
			if err != nil {
				return err
			}
			for _, ch := range changes {
				fmt.Println(ch)
			}
			return nil
		}),
	}
}

func exportCommand(g *globalFlags) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "export [-o FILE] CONTAINER",
		Short: "Write a container's file system as a tar",
		Args:  cobra.ExactArgs(1),
		RunE: g.withContainer(0, func(cmd *cobra.Command, c *berth.Container, args []string) error {
			return writeOutput(out, func(w io.Writer) error { return c.Export(cmd.Context(), w) })
		}),
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "file to write (default stdout)")
	return cmd
}
