package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/berthrt/berth"
	"github.com/berthrt/berth/cgroup"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

func containerCommands(g *globalFlags) []*cobra.Command {
	return []*cobra.Command{
		runCommand(g, true), runCommand(g, false), startCommand(g), execCommand(g), psCommand(g),
		logsCommand(g), stopCommand(g), killCommand(g), rmCommand(g), inspectCommand(g),
		topCommand(g), updateCommand(g), commitCommand(g), diffCommand(g), exportCommand(g), pauseCommand(g, true), pauseCommand(g, false), statsCommand(g), portCommand(g),
	}
}

// runFlags are the flags of run and create.
type runFlags struct {
	name, workdir, user, entrypoint, hostname, network, ip   string
	env, envFiles, volumes, mounts, tmpfs, capAdd, capDrop   []string
	securityOpts, ulimits, publish, dns, dnsSearch, dnsOpts  []string
	addHosts, aliases, labels                                []string
	devices, readBps, writeBps, readIOps, writeIOps          []string
	rm, detach, interactive, tty, readOnly, privileged, pAll bool
	memory, memoryReservation, memorySwap                    string
	cpus                                                     float64
	cpuShares, cpuPeriod, cpuQuota, pidsLimit                int64
	cpusetCpus, cpusetMems, cgroupParent, stopSignal         string
	blkioWeight                                              uint16
	stopTimeout                                              int
	swappiness                                               int64
	oomKillDisable                                           bool
	weightDevices                                            []string
	uidmaps, gidmaps                                         []string
}

func (f *runFlags) register(fs *pflag.FlagSet) {
	fs.SetInterspersed(false)
	fs.Bool("help", false, "help for this command") // -h is --hostname, as in docker
	fs.StringVar(&f.name, "name", "", "container name")
	fs.StringArrayVarP(&f.env, "env", "e", nil, "set environment variable KEY=VALUE")
	fs.StringArrayVar(&f.envFiles, "env-file", nil, "read environment variables from a file")
	fs.StringArrayVarP(&f.volumes, "volume", "v", nil, "bind mount or volume SRC:DST[:ro]")
	fs.StringArrayVar(&f.mounts, "mount", nil, "mount type=bind|volume|tmpfs,source=..,target=..[,readonly]")
	fs.StringArrayVar(&f.tmpfs, "tmpfs", nil, "tmpfs mount DST[:options]")
	fs.StringVarP(&f.workdir, "workdir", "w", "", "working directory")
	fs.StringVarP(&f.user, "user", "u", "", "user[:group]")
	fs.StringVar(&f.entrypoint, "entrypoint", "", "replace the image's entrypoint")
	fs.StringVarP(&f.hostname, "hostname", "h", "", "host name")
	fs.BoolVar(&f.readOnly, "read-only", false, "read-only root file system")
	fs.StringArrayVar(&f.capAdd, "cap-add", nil, "add a capability")
	fs.StringArrayVar(&f.capDrop, "cap-drop", nil, "drop a capability")
	fs.BoolVar(&f.privileged, "privileged", false, "all capabilities and devices, no seccomp")
	fs.StringArrayVar(&f.securityOpts, "security-opt", nil, "seccomp=unconfined|FILE, no-new-privileges")
	fs.StringArrayVar(&f.ulimits, "ulimit", nil, "resource limit NAME=SOFT[:HARD]")
	fs.BoolVar(&f.rm, "rm", false, "remove the container when it exits")
	fs.BoolVarP(&f.detach, "detach", "d", false, "run in the background, print the id")
	fs.BoolVarP(&f.interactive, "interactive", "i", false, "keep stdin open")
	fs.BoolVarP(&f.tty, "tty", "t", false, "allocate a pseudo-terminal")
	f.resourceFlags(fs)
	fs.StringArrayVar(&f.uidmaps, "uidmap", nil, "user namespace uid map CONTAINER:HOST:SIZE (repeatable; also the gid map without --gidmap)")
	fs.StringArrayVar(&f.gidmaps, "gidmap", nil, "user namespace gid map CONTAINER:HOST:SIZE (repeatable; also the uid map without --uidmap)")
	fs.StringArrayVar(&f.weightDevices, "blkio-weight-device", nil, "block io weight of a device DEVICE:WEIGHT (10-1000)")
	fs.Int64Var(&f.swappiness, "memory-swappiness", -1, "memory swappiness 0-100 (-1: the default; ignored on cgroup v2)")
	fs.BoolVar(&f.oomKillDisable, "oom-kill-disable", false, "disable the OOM killer (ignored on cgroup v2)")
	fs.StringVar(&f.cgroupParent, "cgroup-parent", "", "parent cgroup")
	fs.StringArrayVar(&f.devices, "device", nil, "host device HOST[:CONTAINER[:rwm]]")
	fs.StringArrayVar(&f.readBps, "device-read-bps", nil, "read rate limit DEVICE:RATE (e.g. /dev/sda:1mb)")
	fs.StringArrayVar(&f.writeBps, "device-write-bps", nil, "write rate limit DEVICE:RATE")
	fs.StringArrayVar(&f.readIOps, "device-read-iops", nil, "read ops limit DEVICE:N")
	fs.StringArrayVar(&f.writeIOps, "device-write-iops", nil, "write ops limit DEVICE:N")
	fs.StringVar(&f.network, "network", "", "bridge|none|host|container:ID|NAME")
	fs.StringVar(&f.network, "net", "", "alias of --network")
	fs.StringArrayVar(&f.aliases, "network-alias", nil, "extra name on the network")
	fs.StringVar(&f.ip, "ip", "", "fixed IPv4 address")
	fs.StringArrayVarP(&f.publish, "publish", "p", nil, "publish [IP:]HOST:CTR[/udp] or CTR")
	fs.BoolVarP(&f.pAll, "publish-all", "P", false, "publish every exposed port")
	fs.StringArrayVar(&f.dns, "dns", nil, "DNS server")
	fs.StringArrayVar(&f.dnsSearch, "dns-search", nil, "DNS search domain")
	fs.StringArrayVar(&f.dnsOpts, "dns-option", nil, "DNS option")
	fs.StringArrayVar(&f.addHosts, "add-host", nil, "extra hosts entry NAME:IP")
	fs.StringArrayVarP(&f.labels, "label", "l", nil, "label KEY=VALUE")
	fs.StringVar(&f.stopSignal, "stop-signal", "", "signal to stop the container")
	fs.IntVar(&f.stopTimeout, "stop-timeout", 0, "seconds to wait before killing")
}

// config builds the ContainerConfig of IMAGE [CMD...].
func (f *runFlags) config(ctx context.Context, rt *berth.Runtime, args []string) (berth.ContainerConfig, error) {
	img, err := rt.Image(ctx, args[0])
	if errors.Is(err, berth.ErrNotFound) {
		img, err = rt.Pull(ctx, args[0], berth.PullOptions{})
	}
	if err != nil {
		return berth.ContainerConfig{}, err
	}
	cfg := berth.ContainerConfig{
		Image: img, Name: f.name, WorkingDir: f.workdir, User: f.user, Hostname: f.hostname,
		ReadOnlyRootfs: f.readOnly, CapAdd: f.capAdd, CapDrop: f.capDrop, Privileged: f.privileged,
		TTY: f.tty, NetworkMode: f.network, NetworkAliases: f.aliases, IP: f.ip, PublishAll: f.pAll,
		DNS: f.dns, DNSSearch: f.dnsSearch, DNSOptions: f.dnsOpts, ExtraHosts: f.addHosts,
		StopSignal: f.stopSignal, StopTimeout: time.Duration(f.stopTimeout) * time.Second,
		CgroupParent: f.cgroupParent,
	}
	if len(args) > 1 {
		cfg.Cmd = args[1:]
	}
	if f.entrypoint != "" {
		cfg.Entrypoint = []string{f.entrypoint}
	}
	for _, file := range f.envFiles {
		env, err := readEnvFile(file)
		if err != nil {
			return cfg, err
		}
		cfg.Env = append(cfg.Env, env...)
	}
	for _, e := range f.env {
		if e, ok := envEntry(e); ok {
			cfg.Env = append(cfg.Env, e)
		}
	}
	if len(f.labels) > 0 {
		cfg.Labels = map[string]string{}
		for _, l := range f.labels {
			k, v, _ := strings.Cut(l, "=")
			cfg.Labels[k] = v
		}
	}
	if cfg.Mounts, err = appendParsed(cfg.Mounts, f.volumes, parseVolume); err != nil {
		return cfg, err
	}
	if cfg.Mounts, err = appendParsed(cfg.Mounts, f.mounts, parseMount); err != nil {
		return cfg, err
	}
	for _, t := range f.tmpfs {
		dst, opts, _ := strings.Cut(t, ":")
		m := berth.Mount{Type: "tmpfs", Target: dst}
		if opts != "" {
			m.Options = strings.Split(opts, ",")
		}
		cfg.Mounts = append(cfg.Mounts, m)
	}
	for _, o := range f.securityOpts {
		k, v, _ := strings.Cut(o, "=")
		switch {
		case k == "no-new-privileges" && (v == "" || v == "true"):
			cfg.NoNewPrivileges = true
		case k == "seccomp" && v == "unconfined":
			cfg.SeccompUnconfined = true
		case k == "seccomp":
			b, err := os.ReadFile(v)
			if err != nil {
				return cfg, err
			}
			cfg.Seccomp = b
		default:
			return cfg, fmt.Errorf("--security-opt %q: %w", o, berth.ErrInvalid)
		}
	}
	if cfg.Ulimits, err = appendParsed(cfg.Ulimits, f.ulimits, parseUlimit); err != nil {
		return cfg, err
	}
	if cfg.UIDMappings, err = appendParsed(cfg.UIDMappings, f.uidmaps, idMapParser("--uidmap")); err != nil {
		return cfg, err
	}
	if cfg.GIDMappings, err = appendParsed(cfg.GIDMappings, f.gidmaps, idMapParser("--gidmap")); err != nil {
		return cfg, err
	}
	// As podman: one of the two maps stands for both.
	if cfg.GIDMappings == nil {
		cfg.GIDMappings = cfg.UIDMappings
	} else if cfg.UIDMappings == nil {
		cfg.UIDMappings = cfg.GIDMappings
	}
	if cfg.Publish, err = appendParsed(cfg.Publish, f.publish, parsePublish); err != nil {
		return cfg, err
	}
	r := &cfg.Resources
	// A new container starts from no limits: every flag applies, an unset
	// one as its zero value.
	if err := f.resources(r, func(string) bool { return true }); err != nil {
		return cfg, err
	}
	if f.swappiness != -1 {
		r.MemorySwappiness = new(f.swappiness)
	}
	r.OOMKillDisable = f.oomKillDisable
	// Docker's warnings for these: accepted, but doing less than asked.
	if r.OOMKillDisable && r.Memory == 0 {
		fmt.Fprintln(os.Stderr, "WARNING: Disabling the OOM killer on containers without setting a '-m/--memory' limit may be dangerous.")
	}
	if cgroup.HostMode() == cgroup.Unified {
		if r.OOMKillDisable {
			fmt.Fprintln(os.Stderr, "WARNING: Your kernel does not support OomKillDisable. OomKillDisable discarded.")
		}
		if r.MemorySwappiness != nil {
			fmt.Fprintln(os.Stderr, "WARNING: Your kernel does not support memory swappiness capabilities or the cgroup is not mounted. Memory swappiness discarded.")
		}
	}
	if r.BlkioWeightDevice, err = appendParsed(r.BlkioWeightDevice, f.weightDevices, parseWeightDevice); err != nil {
		return cfg, err
	}
	for _, d := range f.devices {
		parts := strings.Split(d, ":")
		dm := berth.DeviceMapping{PathOnHost: parts[0]}
		if len(parts) > 1 {
			dm.PathInContainer = parts[1]
		}
		if len(parts) > 2 {
			dm.Permissions = parts[2]
		}
		cfg.Devices = append(cfg.Devices, dm)
	}
	for _, x := range []struct {
		flag string
		in   []string
		out  *[]cgroup.ThrottleDevice
		size bool
	}{
		{"--device-read-bps", f.readBps, &r.BlkioDeviceReadBps, true},
		{"--device-write-bps", f.writeBps, &r.BlkioDeviceWriteBps, true},
		{"--device-read-iops", f.readIOps, &r.BlkioDeviceReadIOps, false},
		{"--device-write-iops", f.writeIOps, &r.BlkioDeviceWriteIOps, false},
	} {
		for _, v := range x.in {
			td, err := parseThrottle(x.flag, v, x.size)
			if err != nil {
				return cfg, err
			}
			*x.out = append(*x.out, td)
		}
	}
	return cfg, nil
}

// parseWeightDevice reads DEVICE:WEIGHT for --blkio-weight-device; the
// weight's range is checked with the other limits.
func parseWeightDevice(v string) (cgroup.WeightDevice, error) {
	const flag = "--blkio-weight-device"
	major, minor, weight, err := blockDeviceArg(flag, v, "WEIGHT")
	if err != nil {
		return cgroup.WeightDevice{}, err
	}
	w, err := strconv.ParseUint(weight, 10, 16)
	if err != nil {
		return cgroup.WeightDevice{}, fmt.Errorf("%s %q: invalid weight for device, want 10 to 1000: %w", flag, v, berth.ErrInvalid)
	}
	return cgroup.WeightDevice{Major: major, Minor: minor, Weight: uint16(w)}, nil
}

// parseThrottle reads DEVICE:RATE for the blkio throttle flags.
func parseThrottle(flag, v string, size bool) (cgroup.ThrottleDevice, error) {
	major, minor, r, err := blockDeviceArg(flag, v, "RATE")
	if err != nil {
		return cgroup.ThrottleDevice{}, err
	}
	var rate int64
	if size {
		rate, err = parseBytes(flag, strings.TrimSuffix(strings.ToLower(r), "b"))
	} else {
		rate, err = strconv.ParseInt(r, 10, 64)
	}
	if err != nil || rate <= 0 {
		return cgroup.ThrottleDevice{}, fmt.Errorf("%s %q: bad rate: %w", flag, v, berth.ErrInvalid)
	}
	return cgroup.ThrottleDevice{Major: major, Minor: minor, Rate: uint64(rate)}, nil
}

// blockDeviceArg splits flag's DEVICE:VALUE at the last colon and gives the
// device's numbers, DEVICE having to be a block device; what names VALUE
// in the error.
func blockDeviceArg(flag, v, what string) (major, minor int64, value string, err error) {
	i := strings.LastIndex(v, ":")
	if i <= 0 {
		return 0, 0, "", fmt.Errorf("%s %q: want DEVICE:%s: %w", flag, v, what, berth.ErrInvalid)
	}
	var st unix.Stat_t
	if err := unix.Stat(v[:i], &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return 0, 0, "", fmt.Errorf("%s %q: %s is not a block device: %w", flag, v, v[:i], berth.ErrInvalid)
	}
	return int64(unix.Major(uint64(st.Rdev))), int64(unix.Minor(uint64(st.Rdev))), v[i+1:], nil
}

func readEnvFile(path string) ([]string, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	var out []string
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if l, ok := envEntry(l); ok {
			out = append(out, l)
		}
	}
	return out, sc.Err()
}

// envEntry gives KEY=VALUE as it is and completes a bare KEY from this
// process's environment, as docker's -e and --env-file do; false for an
// unset KEY, which is left out.
func envEntry(e string) (string, bool) {
	if strings.Contains(e, "=") {
		return e, true
	}
	v, ok := os.LookupEnv(e)
	return e + "=" + v, ok
}

func parseVolume(v string) (berth.Mount, error) {
	parts := strings.Split(v, ":")
	m := berth.Mount{}
	switch len(parts) {
	case 1:
		m.Type, m.Target = "volume", parts[0]
		m.Source = "anon-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	case 2, 3:
		m.Source, m.Target = parts[0], parts[1]
		if len(parts) == 3 {
			for _, o := range strings.Split(parts[2], ",") {
				switch o {
				case "ro":
					m.ReadOnly = true
				case "rw", "z", "Z":
				default:
					m.Options = append(m.Options, o)
				}
			}
		}
	default:
		return m, fmt.Errorf("-v %q: want SRC:DST[:ro]: %w", v, berth.ErrInvalid)
	}
	return m, nil
}

func parseMount(v string) (berth.Mount, error) {
	m := berth.Mount{}
	for _, kv := range strings.Split(v, ",") {
		k, val, _ := strings.Cut(kv, "=")
		switch k {
		case "type":
			m.Type = val
		case "source", "src":
			m.Source = val
		case "target", "dst", "destination":
			m.Target = val
		case "readonly", "ro":
			m.ReadOnly = val == "" || val == "true" || val == "1"
		case "bind-propagation":
			m.Options = append(m.Options, val)
		case "tmpfs-size":
			m.Options = append(m.Options, "size="+val)
		case "tmpfs-mode":
			m.Options = append(m.Options, "mode="+val)
		default:
			return m, fmt.Errorf("--mount %q: unknown key %q: %w", v, k, berth.ErrInvalid)
		}
	}
	if m.Target == "" {
		return m, fmt.Errorf("--mount %q: no target: %w", v, berth.ErrInvalid)
	}
	return m, nil
}

func parseUlimit(u string) (berth.Ulimit, error) {
	name, vals, ok := strings.Cut(u, "=")
	if !ok {
		return berth.Ulimit{}, fmt.Errorf("--ulimit %q: want NAME=SOFT[:HARD]: %w", u, berth.ErrInvalid)
	}
	soft, hard, hasHard := strings.Cut(vals, ":")
	s, err := strconv.ParseUint(soft, 10, 64)
	if err != nil {
		return berth.Ulimit{}, fmt.Errorf("--ulimit %q: %w", u, berth.ErrInvalid)
	}
	h := s
	if hasHard {
		if h, err = strconv.ParseUint(hard, 10, 64); err != nil {
			return berth.Ulimit{}, fmt.Errorf("--ulimit %q: %w", u, berth.ErrInvalid)
		}
	}
	return berth.Ulimit{Name: name, Soft: s, Hard: h}, nil
}

// idMapParser parses podman's CONTAINER:HOST:SIZE for flag.
func idMapParser(flag string) func(string) (berth.IDMap, error) {
	return func(v string) (berth.IDMap, error) {
		parts := strings.Split(v, ":")
		var n [3]int
		for i := range n {
			var err error
			if len(parts) != 3 {
				err = errors.New("want CONTAINER:HOST:SIZE")
			} else if n[i], err = strconv.Atoi(parts[i]); err == nil && n[i] < 0 {
				err = errors.New("negative id")
			}
			if err != nil {
				return berth.IDMap{}, fmt.Errorf("%s %q: %v: %w", flag, v, err, berth.ErrInvalid)
			}
		}
		return berth.IDMap{ContainerID: n[0], HostID: n[1], Size: n[2]}, nil
	}
}

func parsePublish(p string) (berth.PortMapping, error) {
	pm := berth.PortMapping{Protocol: "tcp"}
	spec, proto, ok := strings.Cut(p, "/")
	if ok {
		pm.Protocol = proto
	}
	parts := strings.Split(spec, ":")
	bad := fmt.Errorf("-p %q: want [IP:]HOST:CTR[/udp] or CTR: %w", p, berth.ErrInvalid)
	port := func(s string) (uint16, error) {
		if s == "" {
			return 0, nil
		}
		n, err := strconv.ParseUint(s, 10, 16)
		if err != nil {
			return 0, bad
		}
		return uint16(n), nil
	}
	var err error
	switch len(parts) {
	case 1:
		pm.ContainerPort, err = port(parts[0])
	case 2:
		if pm.HostPort, err = port(parts[0]); err == nil {
			pm.ContainerPort, err = port(parts[1])
		}
	case 3:
		a, perr := netip.ParseAddr(parts[0])
		if perr != nil {
			return pm, bad
		}
		pm.HostIP = a
		if pm.HostPort, err = port(parts[1]); err == nil {
			pm.ContainerPort, err = port(parts[2])
		}
	default:
		return pm, bad
	}
	if err != nil || pm.ContainerPort == 0 {
		return pm, bad
	}
	return pm, nil
}

func parseBytes(flag, s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	mult := int64(1)
	switch strings.ToLower(s[len(s)-1:]) {
	case "b":
		s = s[:len(s)-1]
	case "k":
		mult, s = 1<<10, s[:len(s)-1]
	case "m":
		mult, s = 1<<20, s[:len(s)-1]
	case "g":
		mult, s = 1<<30, s[:len(s)-1]
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s %q: want a size like 256m: %w", flag, s, berth.ErrInvalid)
	}
	return int64(n * float64(mult)), nil
}

// runCommand is run, or with start false, create.
func runCommand(g *globalFlags, start bool) *cobra.Command {
	use, short := "create [OPTIONS] IMAGE [CMD...]", "Create a container"
	if start {
		use, short = "run [OPTIONS] IMAGE [CMD...]", "Create and start a container; exit with its status"
	}
	f := &runFlags{}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.MinimumNArgs(1),
		RunE: g.withRuntime(func(cmd *cobra.Command, rt *berth.Runtime, args []string) error {
			return runContainer(cmd.Context(), rt, f, args, start)
		}),
	}
	f.register(cmd.Flags())
	return cmd
}

func runContainer(ctx context.Context, rt *berth.Runtime, f *runFlags, args []string, start bool) error {
	cfg, err := f.config(ctx, rt, args)
	if err != nil {
		return err
	}
	// A container created by the CLI outlives this process unless run
	// attached: create, and run -d, make it detached.
	cfg.Detached = !start || f.detach
	if start && !f.detach {
		cfg.Stdout, cfg.Stderr = os.Stdout, os.Stderr
		if f.interactive {
			cfg.Stdin = os.Stdin
		}
	}
	c, err := rt.Create(ctx, cfg)
	if err != nil {
		return err
	}
	if !start {
		fmt.Println(c.ID())
		return nil
	}
	var restore func()
	if f.tty && f.interactive && isTerminal(os.Stdin) {
		if st, err := term.MakeRaw(int(os.Stdin.Fd())); err == nil {
			restore = func() { _ = term.Restore(int(os.Stdin.Fd()), st) }
		}
	}
	if err := c.Start(ctx); err != nil {
		if restore != nil {
			restore()
		}
		_ = c.Delete(context.WithoutCancel(ctx), berth.DeleteOptions{Force: true})
		var ee *berth.ExitError
		if errors.As(err, &ee) {
			fmt.Fprintln(os.Stderr, "berth:", err)
			return exitCode(ee.Code)
		}
		return err
	}
	if f.detach {
		fmt.Println(c.ID())
		return nil
	}
	if f.tty && isTerminal(os.Stdout) {
		if w, h, err := term.GetSize(int(os.Stdout.Fd())); err == nil {
			_ = c.Resize(uint16(w), uint16(h))
		}
	}
	st, err := c.Wait(ctx)
	if restore != nil {
		restore()
	}
	if err != nil {
		_ = c.Kill(context.WithoutCancel(ctx))
		st = c.State()
	}
	if f.rm {
		if err := c.Delete(context.WithoutCancel(ctx), berth.DeleteOptions{Force: true}); err != nil {
			fmt.Fprintln(os.Stderr, "berth: remove:", err)
		}
	}
	if st.ExitCode != 0 {
		return exitCode(st.ExitCode)
	}
	return nil
}

// eachContainer runs fn on each named container, printing its name when
// done, and stops at the first error.
func eachContainer(cmd *cobra.Command, rt *berth.Runtime, names []string, fn func(*berth.Container) error) error {
	for _, a := range names {
		c, err := rt.Container(cmd.Context(), a)
		if err != nil {
			return err
		}
		if err := fn(c); err != nil {
			return err
		}
		fmt.Println(a)
	}
	return nil
}

func startCommand(g *globalFlags) *cobra.Command {
	var attach bool
	cmd := &cobra.Command{
		Use:   "start [-a] CONTAINER",
		Short: "Start a created container",
		Args:  cobra.ExactArgs(1),
		RunE: g.withContainer(0, func(cmd *cobra.Command, c *berth.Container, args []string) error {
			if err := c.Start(cmd.Context()); err != nil {
				return err
			}
			if !attach {
				fmt.Println(args[0])
				return nil
			}
			rc, err := c.Logs(cmd.Context(), berth.LogsOptions{Follow: true})
			if err != nil {
				return err
			}
			defer rc.Close()
			_, _ = io.Copy(os.Stdout, rc)
			st, err := c.Wait(cmd.Context())
			if err != nil {
				return err
			}
			if st.ExitCode != 0 {
				return exitCode(st.ExitCode)
			}
			return nil
		}),
	}
	cmd.Flags().BoolVarP(&attach, "attach", "a", false, "attach output and exit with the container's status")
	return cmd
}

func execCommand(g *globalFlags) *cobra.Command {
	var interactive, tty bool
	var env []string
	var user, workdir string
	cmd := &cobra.Command{
		Use:   "exec [-i] [-t] [-e K=V] [-u USER] [-w DIR] CONTAINER CMD...",
		Short: "Run a process in a running container",
		Args:  cobra.MinimumNArgs(2),
		RunE: g.withContainer(0, func(cmd *cobra.Command, c *berth.Container, args []string) error {
			ec := berth.ExecConfig{Cmd: args[1:], Env: env, User: user, WorkingDir: workdir, TTY: tty, Stdout: os.Stdout, Stderr: os.Stderr}
			if interactive {
				ec.Stdin = os.Stdin
			}
			p, err := c.Exec(cmd.Context(), ec)
			if err != nil {
				return err
			}
			code, err := p.Wait(cmd.Context())
			if err != nil {
				return err
			}
			if code != 0 {
				return exitCode(code)
			}
			return nil
		}),
	}
	fs := cmd.Flags()
	fs.SetInterspersed(false)
	fs.BoolVarP(&interactive, "interactive", "i", false, "keep stdin open")
	fs.BoolVarP(&tty, "tty", "t", false, "allocate a pseudo-terminal")
	fs.StringArrayVarP(&env, "env", "e", nil, "environment variable")
	fs.StringVarP(&user, "user", "u", "", "user")
	fs.StringVarP(&workdir, "workdir", "w", "", "working directory")
	return cmd
}

func psCommand(g *globalFlags) *cobra.Command {
	var all, quiet bool
	cmd := &cobra.Command{
		Use:   "ps [-a] [-q]",
		Short: "List containers",
		Args:  cobra.NoArgs,
		RunE: g.withRuntime(func(cmd *cobra.Command, rt *berth.Runtime, args []string) error {
			cs, err := rt.Containers(cmd.Context(), all)
			if err != nil {
				return err
			}
			if quiet {
				for _, c := range cs {
					fmt.Println(c.ID()[:12])
				}
				return nil
			}
			tw := newTable("CONTAINER ID\tIMAGE\tCOMMAND\tCREATED\tSTATUS\tNAMES")
			for _, c := range cs {
				info, err := c.Inspect(cmd.Context())
				if err != nil {
					continue
				}
				status := info.State.Status
				if info.State.Status == berth.StatusExited {
					status = fmt.Sprintf("Exited (%d)", info.State.ExitCode)
				}
				fmt.Fprintf(tw, "%s\t%s\t%q\t%s\t%s\t%s\n", info.ID[:12], info.Image,
					strings.Join(append([]string{info.Path}, info.Args...), " "),
					info.Created.Local().Format(time.DateTime), status, info.Name)
			}
			return tw.Flush()
		}),
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "show stopped containers too")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "only ids")
	return cmd
}

func logsCommand(g *globalFlags) *cobra.Command {
	var follow bool
	cmd := &cobra.Command{
		Use:   "logs [-f] CONTAINER",
		Short: "Print a container's output",
		Args:  cobra.ExactArgs(1),
		RunE: g.withContainer(0, func(cmd *cobra.Command, c *berth.Container, args []string) error {
			rc, err := c.Logs(cmd.Context(), berth.LogsOptions{Follow: follow})
			if err != nil {
				return err
			}
			defer rc.Close()
			_, err = io.Copy(os.Stdout, rc)
			return err
		}),
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "follow the output")
	return cmd
}

func stopCommand(g *globalFlags) *cobra.Command {
	var timeout int
	cmd := &cobra.Command{
		Use:   "stop [-t SECONDS] CONTAINER...",
		Short: "Stop containers (stop signal, then SIGKILL)",
		Args:  cobra.MinimumNArgs(1),
		RunE: g.withRuntime(func(cmd *cobra.Command, rt *berth.Runtime, args []string) error {
			return eachContainer(cmd, rt, args, func(c *berth.Container) error { return c.Stop(cmd.Context(), time.Duration(timeout)*time.Second) })
		}),
	}
	cmd.Flags().IntVarP(&timeout, "time", "t", 10, "seconds to wait before killing")
	return cmd
}

func killCommand(g *globalFlags) *cobra.Command {
	var sig string
	cmd := &cobra.Command{
		Use:   "kill [-s SIGNAL] CONTAINER...",
		Short: "Send a signal to containers",
		Args:  cobra.MinimumNArgs(1),
		RunE: g.withRuntime(func(cmd *cobra.Command, rt *berth.Runtime, args []string) error {
			s, err := berth.ParseSignal(sig)
			if err != nil {
				return err
			}
			return eachContainer(cmd, rt, args, func(c *berth.Container) error { return c.Signal(s) })
		}),
	}
	cmd.Flags().StringVarP(&sig, "signal", "s", "KILL", "signal to send")
	return cmd
}

func rmCommand(g *globalFlags) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "rm [-f] CONTAINER...",
		Short: "Remove containers",
		Args:  cobra.MinimumNArgs(1),
		RunE: g.withRuntime(func(cmd *cobra.Command, rt *berth.Runtime, args []string) error {
			return eachContainer(cmd, rt, args, func(c *berth.Container) error { return c.Delete(cmd.Context(), berth.DeleteOptions{Force: force}) })
		}),
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "kill a running container first")
	return cmd
}

func inspectCommand(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect CONTAINER|IMAGE...",
		Short: "Show low-level information as JSON",
		Args:  cobra.MinimumNArgs(1),
		RunE: g.withRuntime(func(cmd *cobra.Command, rt *berth.Runtime, args []string) error {
			var out []any
			for _, a := range args {
				if c, err := rt.Container(cmd.Context(), a); err == nil {
					info, err := c.Inspect(cmd.Context())
					if err != nil {
						return err
					}
					out = append(out, info)
					continue
				}
				img, err := rt.Image(cmd.Context(), a)
				if err != nil {
					return fmt.Errorf("no container or image %s: %w", a, berth.ErrNotFound)
				}
				out = append(out, map[string]any{"Id": img.ID(), "RepoTags": []string{img.Name}, "RepoDigests": []string{img.Digest.String()}, "Config": img.Config.Config, "Os": img.Config.OS, "Architecture": img.Config.Architecture, "Size": img.Size})
			}
			return printJSON(out)
		}),
	}
}

func topCommand(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "top CONTAINER",
		Short: "List a container's processes",
		Args:  cobra.ExactArgs(1),
		RunE: g.withContainer(0, func(cmd *cobra.Command, c *berth.Container, args []string) error {
			pids, err := c.Processes(cmd.Context())
			if err != nil {
				return err
			}
			tw := newTable("PID\tCMD")
			for _, p := range pids {
				b, _ := os.ReadFile("/proc/" + strconv.Itoa(p) + "/cmdline")
				fmt.Fprintf(tw, "%d\t%s\n", p, strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " ")))
			}
			return tw.Flush()
		}),
	}
}

func pauseCommand(g *globalFlags, pause bool) *cobra.Command {
	use, short := "unpause CONTAINER", "Resume a paused container"
	if pause {
		use, short = "pause CONTAINER", "Freeze every process of a container"
	}
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: g.withContainer(0, func(cmd *cobra.Command, c *berth.Container, args []string) error {
			if pause {
				return c.Pause(cmd.Context())
			}
			return c.Resume(cmd.Context())
		}),
	}
}

func statsCommand(g *globalFlags) *cobra.Command {
	var noStream bool
	cmd := &cobra.Command{
		Use:   "stats [--no-stream] CONTAINER...",
		Short: "Show resource usage",
		Args:  cobra.MinimumNArgs(1),
		RunE: g.withRuntime(func(cmd *cobra.Command, rt *berth.Runtime, args []string) error {
			for {
				tw := newTable("CONTAINER\tMEM USAGE / LIMIT\tCPU TOTAL\tPIDS")
				for _, a := range args {
					c, err := rt.Container(cmd.Context(), a)
					if err != nil {
						return err
					}
					s, err := c.Stats(cmd.Context())
					if err != nil {
						return err
					}
					fmt.Fprintf(tw, "%s\t%s / %s\t%s\t%d\n", c.ID()[:12], humanSize(int64(s.Memory.Usage)), humanSize(int64(s.Memory.Limit)),
						time.Duration(s.CPU.Total), s.Pids.Current)
				}
				tw.Flush()
				if noStream {
					return nil
				}
				select {
				case <-cmd.Context().Done():
					return nil
				case <-time.After(time.Second):
				}
			}
		}),
	}
	cmd.Flags().BoolVar(&noStream, "no-stream", false, "print once")
	return cmd
}

func portCommand(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "port CONTAINER",
		Short: "List a container's published ports",
		Args:  cobra.ExactArgs(1),
		RunE: g.withContainer(0, func(cmd *cobra.Command, c *berth.Container, args []string) error {
			info, err := c.Inspect(cmd.Context())
			if err != nil {
				return err
			}
			for _, p := range info.NetworkSettings.Ports {
				host := "0.0.0.0"
				if p.HostIP.IsValid() {
					host = p.HostIP.String()
				}
				fmt.Printf("%d/%s -> %s:%d\n", p.ContainerPort, p.Protocol, host, p.HostPort)
			}
			return nil
		}),
	}
}

func updateCommand(g *globalFlags) *cobra.Command {
	f := &runFlags{}
	cmd := &cobra.Command{
		Use:   "update [OPTIONS] CONTAINER",
		Short: "Change the resource limits of a container",
		Args:  cobra.ExactArgs(1),
		RunE: g.withContainer(0, func(cmd *cobra.Command, c *berth.Container, args []string) error {
			info, err := c.Inspect(cmd.Context())
			if err != nil {
				return err
			}
			r := info.Config.Resources
			if err := f.resources(&r, cmd.Flags().Changed); err != nil {
				return err
			}
			return c.Update(cmd.Context(), r)
		}),
	}
	fs := cmd.Flags()
	f.resourceFlags(fs)
	return cmd
}

// resourceFlags registers the resource limit flags that run, create and
// update share.
func (f *runFlags) resourceFlags(fs *pflag.FlagSet) {
	fs.StringVarP(&f.memory, "memory", "m", "", "memory limit (e.g. 256m)")
	fs.StringVar(&f.memoryReservation, "memory-reservation", "", "memory soft limit")
	fs.StringVar(&f.memorySwap, "memory-swap", "", "memory+swap limit, -1 unlimited")
	fs.Float64Var(&f.cpus, "cpus", 0, "number of cpus")
	fs.Int64VarP(&f.cpuShares, "cpu-shares", "c", 0, "relative cpu weight")
	fs.Int64Var(&f.cpuPeriod, "cpu-period", 0, "cfs period (us)")
	fs.Int64Var(&f.cpuQuota, "cpu-quota", 0, "cfs quota (us)")
	fs.StringVar(&f.cpusetCpus, "cpuset-cpus", "", "cpus allowed (0-3,5)")
	fs.StringVar(&f.cpusetMems, "cpuset-mems", "", "memory nodes allowed")
	fs.Int64Var(&f.pidsLimit, "pids-limit", 0, "max number of processes")
	fs.Uint16Var(&f.blkioWeight, "blkio-weight", 0, "block io weight 10-1000")
}

// resources sets the limits of r that run, create and update share; each
// only when given reports its flag (by name) as set.
func (f *runFlags) resources(r *berth.Resources, given func(flag string) bool) error {
	for _, x := range []struct {
		flag string
		set  func() error
	}{
		{"memory", func() (err error) { r.Memory, err = parseBytes("--memory", f.memory); return }},
		{"memory-reservation", func() (err error) {
			r.MemoryReservation, err = parseBytes("--memory-reservation", f.memoryReservation)
			return
		}},
		{"memory-swap", func() (err error) {
			if f.memorySwap == "-1" {
				r.MemorySwap = -1
				return nil
			}
			r.MemorySwap, err = parseBytes("--memory-swap", f.memorySwap)
			return
		}},
		{"cpus", func() error { r.NanoCPUs = int64(f.cpus * 1e9); return nil }},
		{"cpu-shares", func() error { r.CPUShares = f.cpuShares; return nil }},
		{"cpu-period", func() error { r.CPUPeriod = f.cpuPeriod; return nil }},
		{"cpu-quota", func() error { r.CPUQuota = f.cpuQuota; return nil }},
		{"cpuset-cpus", func() error { r.CpusetCpus = f.cpusetCpus; return nil }},
		{"cpuset-mems", func() error { r.CpusetMems = f.cpusetMems; return nil }},
		{"pids-limit", func() error { r.PidsLimit = f.pidsLimit; return nil }},
		{"blkio-weight", func() error { r.BlkioWeight = f.blkioWeight; return nil }},
	} {
		if given(x.flag) {
			if err := x.set(); err != nil {
				return err
			}
		}
	}
	return nil
}

// appendParsed parses every flag value with parse and appends the results.
func appendParsed[T any](dst []T, values []string, parse func(string) (T, error)) ([]T, error) {
	for _, v := range values {
		x, err := parse(v)
		if err != nil {
			return dst, err
		}
		dst = append(dst, x)
	}
	return dst, nil
}
