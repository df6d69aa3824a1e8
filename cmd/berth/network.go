package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/berthrt/berth"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"
)

func networkCommand(g *globalFlags) *cobra.Command {
	net := &cobra.Command{Use: "network", Short: "Manage networks"}
	var subnet, gateway string
	create := &cobra.Command{
		Use:   "create [--subnet CIDR] [--gateway IP] NAME",
		Short: "Create a bridge network",
		Args:  cobra.ExactArgs(1),
		RunE: g.withRuntime(func(cmd *cobra.Command, rt *berth.Runtime, args []string) error {
			n, err := rt.CreateNetwork(cmd.Context(), berth.NetworkConfig{Name: args[0], Subnet: subnet, Gateway: gateway})
			if err != nil {
				return err
			}
			fmt.Println(n.Name)
			return nil
		}),
	}
	create.Flags().StringVar(&subnet, "subnet", "", "subnet in CIDR form")
	create.Flags().StringVar(&gateway, "gateway", "", "gateway address")
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List networks",
		Args:  cobra.NoArgs,
		RunE: g.withRuntime(func(cmd *cobra.Command, rt *berth.Runtime, args []string) error {
			ns, err := rt.Networks(cmd.Context())
			if err != nil {
				return err
			}
			tw := newTable("NAME\tBRIDGE\tSUBNET\tGATEWAY")
			for _, n := range ns {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", n.Name, n.Bridge, n.Subnet, n.Gateway)
			}
			return tw.Flush()
		}),
	}
	rm := &cobra.Command{
		Use:   "rm NAME...",
		Short: "Remove networks",
		Args:  cobra.MinimumNArgs(1),
		RunE: g.withRuntime(func(cmd *cobra.Command, rt *berth.Runtime, args []string) error {
			for _, a := range args {
				if err := rt.RemoveNetwork(cmd.Context(), a); err != nil {
					return err
				}
				fmt.Println(a)
			}
			return nil
		}),
	}
	inspect := &cobra.Command{
		Use:   "inspect NAME...",
		Short: "Show networks as JSON",
		Args:  cobra.MinimumNArgs(1),
		RunE: g.withRuntime(func(cmd *cobra.Command, rt *berth.Runtime, args []string) error {
			var out []any
			for _, a := range args {
				n, err := rt.Network(cmd.Context(), a)
				if err != nil {
					return err
				}
				out = append(out, n)
			}
			return printJSON(out)
		}),
	}
	var aliases []string
	connect := &cobra.Command{
		Use:   "connect [--alias NAME] NETWORK CONTAINER",
		Short: "Attach a running container to a network",
		Args:  cobra.ExactArgs(2),
		RunE: g.withContainer(1, func(cmd *cobra.Command, c *berth.Container, args []string) error {
			return c.ConnectNetwork(cmd.Context(), args[0], aliases...)
		}),
	}
	connect.Flags().StringArrayVar(&aliases, "alias", nil, "extra name on the network")
	disconnect := &cobra.Command{
		Use:   "disconnect NETWORK CONTAINER",
		Short: "Detach a running container from a network",
		Args:  cobra.ExactArgs(2),
		RunE: g.withContainer(1, func(cmd *cobra.Command, c *berth.Container, args []string) error {
			return c.DisconnectNetwork(cmd.Context(), args[0])
		}),
	}
	net.AddCommand(create, ls, rm, inspect, connect, disconnect)
	return net
}

// parseChanges applies Dockerfile-style --change instructions to a config.
func parseChanges(changes []string) (ocispec.ImageConfig, error) {
	var cfg ocispec.ImageConfig
	for _, c := range changes {
		instr, arg, _ := strings.Cut(strings.TrimSpace(c), " ")
		arg = strings.TrimSpace(arg)
		list := func() []string {
			var l []string
			if strings.HasPrefix(arg, "[") && json.Unmarshal([]byte(arg), &l) == nil {
				return l
			}
			return []string{"/bin/sh", "-c", arg}
		}
		switch strings.ToUpper(instr) {
		case "CMD":
			cfg.Cmd = list()
		case "ENTRYPOINT":
			cfg.Entrypoint = list()
		case "ENV":
			k, v, ok := strings.Cut(arg, "=")
			if !ok {
				k, v, _ = strings.Cut(arg, " ")
			}
			cfg.Env = append(cfg.Env, k+"="+strings.TrimSpace(v))
		case "WORKDIR":
			cfg.WorkingDir = arg
		case "USER":
			cfg.User = arg
		case "EXPOSE":
			if cfg.ExposedPorts == nil {
				cfg.ExposedPorts = map[string]struct{}{}
			}
			for _, p := range strings.Fields(arg) {
				if !strings.Contains(p, "/") {
					p += "/tcp"
				}
				cfg.ExposedPorts[p] = struct{}{}
			}
		case "STOPSIGNAL":
			cfg.StopSignal = arg
		default:
			return cfg, fmt.Errorf("--change %q: unsupported instruction: %w", c, berth.ErrInvalid)
		}
	}
	return cfg, nil
}
