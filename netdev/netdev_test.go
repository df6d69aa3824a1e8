//go:build linux

package netdev

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/berthrt/berth/errdefs"
)

func httpGet(t *testing.T, url string) string {
	t.Helper()
	cl := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{Proxy: nil}}
	resp, err := cl.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func udpAsk(t *testing.T, addr string) string {
	t.Helper()
	c, err := net.Dial("udp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 1500)
	for range 5 { // UDP may lose the first datagram while conntrack settles
		c.Write([]byte("ping"))
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		n, err := c.Read(buf)
		if err == nil {
			return string(buf[:n])
		}
	}
	t.Fatalf("no UDP answer from %s", addr)
	return ""
}

func TestSameNetworkByIPAndName(t *testing.T) {
	e := newEnv(t)
	n := e.network(NetworkConfig{Name: "web"})
	dir := t.TempDir()
	a, b := startCtr(t), startCtr(t)
	epA := e.attach(EndpointConfig{ContainerID: "a", Network: "web", Pid: a.Pid, Name: "alpha", Aliases: []string{"db"},
		HostsPath: filepath.Join(dir, "a.hosts"), ExtraHosts: []HostsEntry{{IP: netip.MustParseAddr("10.99.99.99"), Names: []string{"extra"}}}})
	epB := e.attach(EndpointConfig{ContainerID: "b", Network: "web", Pid: b.Pid, Name: "beta", HostsPath: filepath.Join(dir, "b.hosts")})
	if epA.IP == epB.IP || !n.Subnet.Contains(epA.IP) || !n.Subnet.Contains(epB.IP) {
		t.Fatalf("addresses %s %s in %s", epA.IP, epB.IP, n.Subnet)
	}
	if epA.IfName != "eth0" || epA.Gateway != n.Gateway {
		t.Fatalf("endpoint %+v", epA)
	}
	a.must("serve-tcp 8080")
	if got := b.must("get http://%s:8080/", epA.IP); !strings.HasPrefix(got, "hello "+epB.IP.String()+":") {
		t.Fatalf("by IP: %q", got)
	}
	b.must("hosts %s", filepath.Join(dir, "b.hosts"))
	for _, name := range []string{"alpha", "db"} {
		if got := b.must("resolve %s", name); got != epA.IP.String() {
			t.Fatalf("resolve %s: %q, want %s", name, got, epA.IP)
		}
	}
	if got := b.must("get http://alpha:8080/"); !strings.HasPrefix(got, "hello "+epB.IP.String()) {
		t.Fatalf("by name: %q", got)
	}
	// A container joining later shows up in b's /etc/hosts: the file is
	// rewritten in place, so the bind mount sees it.
	g := startCtr(t)
	epG := e.attach(EndpointConfig{ContainerID: "g", Network: "web", Pid: g.Pid, Name: "gamma"})
	if got := b.must("cat /etc/hosts"); !strings.Contains(got, "|"+epG.IP.String()+"\tgamma|") {
		t.Fatalf("b's /etc/hosts after gamma joined: %q", got)
	}
	ha, _ := os.ReadFile(filepath.Join(dir, "a.hosts"))
	for _, want := range []string{"127.0.0.1\tlocalhost", epA.IP.String() + "\talpha", "10.99.99.99\textra", epB.IP.String() + "\tbeta"} {
		if !strings.Contains(string(ha), want+"\n") {
			t.Fatalf("a's hosts lacks %q:\n%s", want, ha)
		}
	}
	if err := e.m.Detach(context.Background(), epB); err != nil {
		t.Fatal(err)
	}
	ha, _ = os.ReadFile(filepath.Join(dir, "a.hosts"))
	if strings.Contains(string(ha), "beta") {
		t.Fatalf("a's hosts still lists beta after it left:\n%s", ha)
	}
	if err := e.m.Detach(context.Background(), epB); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("second detach: %v", err)
	}
	if _, err := e.m.Attach(context.Background(), EndpointConfig{ContainerID: "a", Network: "web", Pid: a.Pid}); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("attach twice: %v", err)
	}
	if err := e.m.RemoveNetwork(context.Background(), "web"); !errors.Is(err, errdefs.ErrInUse) {
		t.Fatalf("remove network in use: %v", err)
	}
}

func TestNetworksIsolated(t *testing.T) {
	e := newEnv(t)
	e.network(NetworkConfig{Name: "one"})
	e.network(NetworkConfig{Name: "two"})
	a, c := startCtr(t), startCtr(t)
	epA := e.attach(EndpointConfig{ContainerID: "a", Network: "one", Pid: a.Pid})
	e.attach(EndpointConfig{ContainerID: "c", Network: "two", Pid: c.Pid})
	a.must("serve-tcp 8080")
	if got := c.do("dial %s:8080", epA.IP); !strings.HasPrefix(got, "err") {
		t.Fatalf("container on another network reached %s: %s", epA.IP, got)
	}
	// Connect c to network one as well (a second interface): now it can.
	epC1 := e.attach(EndpointConfig{ContainerID: "c", Network: "one", Pid: c.Pid})
	if epC1.IfName != "eth1" {
		t.Fatalf("second interface named %s", epC1.IfName)
	}
	c.must("dial %s:8080", epA.IP)
	if err := e.m.Detach(context.Background(), epC1); err != nil {
		t.Fatal(err)
	}
	if got := c.do("dial %s:8080", epA.IP); !strings.HasPrefix(got, "err") {
		t.Fatalf("reached %s after disconnect: %s", epA.IP, got)
	}
}

func TestInternalNetwork(t *testing.T) {
	e := newEnv(t)
	e.network(NetworkConfig{Name: "in", Internal: true})
	a, b := startCtr(t), startCtr(t)
	epA := e.attach(EndpointConfig{ContainerID: "a", Network: "in", Pid: a.Pid})
	e.attach(EndpointConfig{ContainerID: "b", Network: "in", Pid: b.Pid})
	a.must("serve-tcp 8080")
	b.must("dial %s:8080", epA.IP)
	if _, err := e.m.Attach(context.Background(), EndpointConfig{ContainerID: "p", Network: "in", NetNSPath: newNetNS(t),
		Ports: []PortMapping{{ContainerPort: 80}}}); !errors.Is(err, errdefs.ErrInvalid) {
		t.Fatalf("ports on an internal network: %v", err)
	}
}

func TestPublishedPorts(t *testing.T) {
	e := newEnv(t)
	n := e.network(NetworkConfig{Name: "pub"})
	a := startCtr(t)
	a.must("serve-tcp 8080")
	a.must("serve-udp 5353")
	ep := e.attach(EndpointConfig{ContainerID: "a", Network: "pub", Pid: a.Pid, Ports: []PortMapping{
		{ContainerPort: 8080},
		{ContainerPort: 5353, Protocol: "udp"},
		{ContainerPort: 8080, HostIP: netip.MustParseAddr("127.0.0.1")},
	}})
	lo, hi := portRange()
	seen := map[uint16]bool{}
	for _, p := range ep.Ports {
		if p.HostPort < lo || p.HostPort > hi || seen[p.HostPort] {
			t.Fatalf("host port %v not fresh in %d-%d", p, lo, hi)
		}
		seen[p.HostPort] = true
	}
	tcp, udp, loOnly := ep.Ports[0].HostPort, ep.Ports[1].HostPort, ep.Ports[2].HostPort
	for _, host := range []string{"127.0.0.1", n.Gateway.String()} {
		if got := httpGet(t, fmt.Sprintf("http://%s:%d/", host, tcp)); !strings.HasPrefix(got, "hello ") {
			t.Fatalf("tcp via %s: %q", host, got)
		}
		if got := udpAsk(t, fmt.Sprintf("%s:%d", host, udp)); !strings.HasPrefix(got, "udp ") {
			t.Fatalf("udp via %s: %q", host, got)
		}
	}
	if got := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", loOnly)); !strings.HasPrefix(got, "hello ") {
		t.Fatalf("tcp on 127.0.0.1 only: %q", got)
	}
	// A container of the same network reaches the published port through
	// the host (hairpin NAT).
	b := startCtr(t)
	e.attach(EndpointConfig{ContainerID: "h", Network: "pub", Pid: b.Pid})
	if got := b.must("get http://%s:%d/", n.Gateway, tcp); !strings.HasPrefix(got, "hello "+n.Gateway.String()+":") {
		t.Fatalf("hairpin: %q", got)
	}
	// ... and so does the container itself (hairpin mode).
	if got := a.must("get http://%s:%d/", n.Gateway, tcp); !strings.HasPrefix(got, "hello "+n.Gateway.String()+":") {
		t.Fatalf("hairpin to itself: %q", got)
	}
	// A fixed host port already published is refused.
	_, err := e.m.Attach(context.Background(), EndpointConfig{ContainerID: "b", Network: "pub", Pid: b.Pid,
		Ports: []PortMapping{{HostPort: tcp, ContainerPort: 80}}})
	if !errors.Is(err, errdefs.ErrInUse) {
		t.Fatalf("port clash: %v", err)
	}
	// A fixed host port held by a host socket is refused too.
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	busy := uint16(l.Addr().(*net.TCPAddr).Port)
	_, err = e.m.Attach(context.Background(), EndpointConfig{ContainerID: "b", Network: "pub", Pid: b.Pid,
		Ports: []PortMapping{{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: busy, ContainerPort: 80}}})
	if !errors.Is(err, errdefs.ErrInUse) {
		t.Fatalf("port held by a socket: %v", err)
	}
	// A fixed free port works.
	fixed := freePort(t)
	b = startCtr(t)
	epB := e.attach(EndpointConfig{ContainerID: "b", Network: "pub", Pid: b.Pid,
		Ports: []PortMapping{{HostPort: fixed, ContainerPort: 8080}}})
	b.must("serve-tcp 8080")
	if got := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", fixed)); !strings.HasPrefix(got, "hello ") {
		t.Fatalf("fixed port: %q", got)
	}
	// After detach the rules are gone.
	if err := e.m.Detach(context.Background(), epB); err != nil {
		t.Fatal(err)
	}
	if n := countRules(t, e.m, epTag(epB.Bridge, epB.HostIfName)); n != 0 {
		t.Fatalf("%d rules of a detached endpoint left", n)
	}
	if n := countRules(t, e.m, epTag(ep.Bridge, ep.HostIfName)); n != 6 {
		t.Fatalf("%d rules for 3 published ports, want 6", n)
	}
}

func freePort(t *testing.T) uint16 {
	l, err := net.Listen("tcp4", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}

func countRules(t *testing.T, m *Manager, tag string) int {
	t.Helper()
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, ch := range m.chains() {
		rules, err := c.GetRules(m.table(), ch)
		if err != nil {
			continue
		}
		for _, r := range rules {
			if ruleTag(r) == tag {
				n++
			}
		}
	}
	return n
}

// TestOutboundNAT: a container reaches a server in a namespace of the
// test's own, connected to the host by a veth pair, and the server sees
// the host's address.
func TestOutboundNAT(t *testing.T) {
	e := newEnv(t)
	e.network(NetworkConfig{Name: "out"})
	srv := startCtr(t)
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	// 198.18.0.0/15 is for benchmarks (RFC 2544); pick a /24 no route uses.
	base := e.m.Pools
	e.m.Pools = []Pool{{netip.MustParsePrefix("198.18.0.0/15"), 24}}
	hs, _ := e.m.loadHost()
	used, err := e.m.usedPrefixes(hs)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := e.m.pickSubnet(used)
	e.m.Pools = base
	if err != nil {
		t.Fatal(err)
	}
	hostIP, srvIP := sub.Addr().Next(), sub.Addr().Next().Next()
	name := "bto" + randHex(8)
	nsFd, err := netns.GetFromPid(srv.Pid)
	if err != nil {
		t.Fatal(err)
	}
	defer nsFd.Close()
	la := netlink.NewLinkAttrs()
	la.Name = name
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "eth0", PeerNamespace: netlink.NsFd(nsFd)}); err != nil {
		t.Fatal(err)
	}
	e.track(name)
	t.Cleanup(func() {
		if l, err := h.LinkByName(name); err == nil {
			h.LinkDel(l)
		}
	})
	l, err := h.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.AddrAdd(l, &netlink.Addr{IPNet: ipNet(hostIP, 24)}); err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetUp(l); err != nil {
		t.Fatal(err)
	}
	sh, err := netlink.NewHandleAt(nsFd, unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatal(err)
	}
	defer sh.Close()
	pl, err := sh.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if err := sh.AddrAdd(pl, &netlink.Addr{IPNet: ipNet(srvIP, 24)}); err != nil {
		t.Fatal(err)
	}
	sh.LinkSetUp(pl)
	sh.LinkSetUp(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: 1}})
	srv.must("serve-tcp 80")

	a := startCtr(t)
	ep := e.attach(EndpointConfig{ContainerID: "a", Network: "out", Pid: a.Pid, Ports: []PortMapping{{ContainerPort: 8080}}})
	got := a.must("get http://%s:80/", srvIP)
	if !strings.HasPrefix(got, "hello "+hostIP.String()+":") {
		t.Fatalf("server saw %q, want the host's address %s", got, hostIP)
	}
	// The other way: "another host" (the outside namespace) reaches the
	// published port on the host's address, and the container sees it.
	a.must("serve-tcp 8080")
	got = srv.must("get http://%s:%d/", hostIP, ep.Ports[0].HostPort)
	if !strings.HasPrefix(got, "hello "+srvIP.String()+":") {
		t.Fatalf("published port from outside: %q", got)
	}
}

func TestManyEndpointsUniqueAddresses(t *testing.T) {
	e := newEnv(t)
	n := e.network(NetworkConfig{Name: "many"})
	ctx := context.Background()
	ips := map[netip.Addr]bool{}
	var eps []*Endpoint
	start := time.Now()
	for i := range 100 {
		ep := e.attach(EndpointConfig{ContainerID: fmt.Sprintf("c%03d", i), Network: "many", NetNSPath: newNetNS(t)})
		if ips[ep.IP] || !hostAddr(n.Subnet, ep.IP) || ep.IP == n.Gateway {
			t.Fatalf("address %s reused or outside %s", ep.IP, n.Subnet)
		}
		ips[ep.IP] = true
		eps = append(eps, ep)
	}
	t.Logf("100 attaches: %v", time.Since(start))
	got, err := e.m.Network("many")
	if err != nil || len(got.Endpoints) != 100 {
		t.Fatalf("network has %d endpoints, err %v", len(got.Endpoints), err)
	}
	// A fixed address: free works, taken is refused.
	fixed := eps[0].IP
	if err := e.m.Detach(ctx, eps[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Attach(ctx, EndpointConfig{ContainerID: "x", Network: "many", NetNSPath: newNetNS(t), IP: eps[1].IP}); !errors.Is(err, errdefs.ErrInUse) {
		t.Fatalf("taken address: %v", err)
	}
	ep := e.attach(EndpointConfig{ContainerID: "x", Network: "many", NetNSPath: newNetNS(t), IP: fixed})
	if ep.IP != fixed {
		t.Fatalf("fixed address: got %s want %s", ep.IP, fixed)
	}
	start = time.Now()
	for _, ep := range eps[1:] {
		if err := e.m.Detach(ctx, ep); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("99 detaches: %v", time.Since(start))
}

func TestDefaultNetwork(t *testing.T) {
	e := newEnv(t)
	b := e.m.Pools[0].Base.Addr().As4()
	e.m.DefaultSubnet = netip.PrefixFrom(netip.AddrFrom4([4]byte{b[0], b[1], 200, 0}), 24)
	ep := e.attach(EndpointConfig{ContainerID: "d", NetNSPath: newNetNS(t)})
	n, err := e.m.Network(DefaultNetwork)
	if err != nil {
		t.Fatal(err)
	}
	e.track(n.Bridge)
	if ep.Network != DefaultNetwork || !n.Subnet.Contains(ep.IP) || n.Subnet != e.m.DefaultSubnet {
		t.Fatalf("default network %+v, endpoint %+v", n, ep)
	}
	// The next network gets another subnet.
	n2 := e.network(NetworkConfig{Name: "second"})
	if n2.Subnet.Overlaps(n.Subnet) || n2.Bridge == n.Bridge {
		t.Fatalf("second network %s/%s clashes with %s/%s", n2.Bridge, n2.Subnet, n.Bridge, n.Subnet)
	}
	if _, err := e.m.CreateNetwork(context.Background(), NetworkConfig{Name: "third", Subnet: n.Subnet}); !errors.Is(err, errdefs.ErrInUse) {
		t.Fatalf("overlapping subnet: %v", err)
	}
	if _, err := e.m.CreateNetwork(context.Background(), NetworkConfig{Name: "second"}); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("duplicate name: %v", err)
	}
	// The host's own namespace is refused.
	if _, err := e.m.Attach(context.Background(), EndpointConfig{ContainerID: "h", Network: "second", NetNSPath: "/proc/self/ns/net"}); !errors.Is(err, errdefs.ErrInvalid) {
		t.Fatalf("attach to the host namespace: %v", err)
	}
	nets, err := e.m.Networks()
	if err != nil || len(nets) != 2 || nets[0].Name != DefaultNetwork || nets[1].Name != "second" {
		t.Fatalf("Networks: %v %v", nets, err)
	}
}

// TestCleanupDeadOwner: the endpoint of a container that died, and the
// network of a root that was deleted, are removed by Cleanup.
func TestCleanupDeadOwner(t *testing.T) {
	e := newEnv(t)
	e.network(NetworkConfig{Name: "c"})
	a := startCtr(t)
	ep := e.attach(EndpointConfig{ContainerID: "a", Network: "c", Pid: a.Pid, Ports: []PortMapping{{ContainerPort: 80}}})
	live := e.attach(EndpointConfig{ContainerID: "live", Network: "c", NetNSPath: newNetNS(t)})
	a.stop()

	// Another root on the same host state, then deleted without cleanup.
	other := &Manager{Root: t.TempDir(), RunDir: e.m.RunDir, Table: e.m.Table, Pools: e.m.Pools}
	defer other.Close()
	on, err := other.CreateNetwork(context.Background(), NetworkConfig{Name: "gone"})
	if err != nil {
		t.Fatal(err)
	}
	e.track(on.Bridge)
	if err := os.RemoveAll(other.Root); err != nil {
		t.Fatal(err)
	}

	if err := e.m.Cleanup(context.Background()); err != nil {
		t.Fatal(err)
	}
	n, err := e.m.Network("c")
	if err != nil {
		t.Fatal(err)
	}
	if len(n.Endpoints) != 1 || n.Endpoints[0].ContainerID != live.ContainerID {
		t.Fatalf("endpoints after cleanup: %+v", n.Endpoints)
	}
	if c := countRules(t, e.m, epTag(ep.Bridge, ep.HostIfName)); c != 0 {
		t.Fatalf("%d rules of a dead endpoint left", c)
	}
	if c := countRules(t, e.m, netTag(on.Bridge)); c != 0 {
		t.Fatalf("%d rules of a deleted root's network left", c)
	}
	h, _ := netlink.NewHandle(unix.NETLINK_ROUTE)
	defer h.Close()
	if _, err := h.LinkByName(on.Bridge); err == nil {
		t.Fatalf("bridge %s of a deleted root survived", on.Bridge)
	}
	hs, err := e.m.loadHost()
	if err != nil {
		t.Fatal(err)
	}
	if len(hs.Ports) != 0 || len(hs.Networks) != 1 {
		t.Fatalf("host state after cleanup: %s", jsonLine(hs))
	}
}

// ---- concurrency across processes ----

type attachJob struct {
	Root, RunDir, Table string
	Pools               []Pool
	Network             string
	Prefix              string
	N                   int
}

func runAttachHelper() {
	var job attachJob
	if err := json.Unmarshal([]byte(os.Getenv("NETDEV_JOB")), &job); err != nil {
		fmt.Println("err", err)
		return
	}
	m := &Manager{Root: job.Root, RunDir: job.RunDir, Table: job.Table, Pools: job.Pools}
	ctx := context.Background()
	if _, err := m.CreateNetwork(ctx, NetworkConfig{Name: job.Network}); err != nil && !errors.Is(err, errdefs.ErrAlreadyExists) {
		fmt.Println("err", err)
		return
	}
	var eps []*Endpoint
	for i := range job.N {
		ns, err := makeNetNS()
		if err != nil {
			fmt.Println("err", err)
			return
		}
		ep, err := m.Attach(ctx, EndpointConfig{ContainerID: fmt.Sprintf("%s-%d", job.Prefix, i), Network: job.Network,
			NetNSPath: fmt.Sprintf("/proc/self/fd/%d", int(ns)), Ports: []PortMapping{{ContainerPort: 80}}})
		if err != nil {
			fmt.Println("err", err)
			return
		}
		eps = append(eps, ep)
		fmt.Println(jsonLine(ep))
	}
	fmt.Println("done")
	io.Copy(io.Discard, os.Stdin)
	for _, ep := range eps {
		if err := m.Detach(ctx, ep); err != nil {
			fmt.Fprintln(os.Stderr, "detach:", err)
			os.Exit(1)
		}
	}
}

func TestConcurrentProcesses(t *testing.T) {
	e1 := newEnv(t)
	e2 := newEnv(t)
	e2.m.RunDir, e2.m.Table, e2.m.Pools = e1.m.RunDir, e1.m.Table, e1.m.Pools
	e2.skipTableCheck = true
	jobs := []attachJob{
		{Root: e1.m.Root, Prefix: "p1"},
		{Root: e1.m.Root, Prefix: "p2"},
		{Root: e2.m.Root, Prefix: "p3"},
		{Root: e2.m.Root, Prefix: "p4"},
	}
	type proc struct {
		cmd *exec.Cmd
		in  io.WriteCloser
		out *bufio.Scanner
	}
	var procs []*proc
	for i := range jobs {
		j := &jobs[i]
		j.RunDir, j.Table, j.Pools, j.Network, j.N = e1.m.RunDir, e1.m.Table, e1.m.Pools, "shared", 15
		cmd := exec.Command("/proc/self/exe", "-test.run=^$")
		cmd.Env = append(os.Environ(), helperEnv+"=attach", "NETDEV_JOB="+jsonLine(j))
		cmd.Stderr = os.Stderr
		cmd.SysProcAttr = &unix.SysProcAttr{Pdeathsig: unix.SIGKILL}
		in, _ := cmd.StdinPipe()
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		p := &proc{cmd, in, bufio.NewScanner(out)}
		procs = append(procs, p)
		t.Cleanup(func() { in.Close(); cmd.Process.Kill(); cmd.Wait() })
	}
	ips := map[string]map[netip.Addr]string{}
	ports := map[uint16]string{}
	bridges := map[string]string{} // root -> bridge
	subnets := map[netip.Prefix]string{}
	for i, p := range procs {
		n := 0
		for p.out.Scan() {
			line := p.out.Text()
			if line == "done" {
				break
			}
			var ep Endpoint
			if err := json.Unmarshal([]byte(line), &ep); err != nil {
				t.Fatalf("helper %d: %s", i, line)
			}
			e1.track(ep.HostIfName)
			e1.track(ep.Bridge)
			root := jobs[i].Root
			if b, ok := bridges[root]; ok && b != ep.Bridge {
				t.Fatalf("one root, two bridges: %s %s", b, ep.Bridge)
			}
			bridges[root] = ep.Bridge
			if r, ok := subnets[ep.Subnet]; ok && r != root {
				t.Fatalf("two roots share subnet %s", ep.Subnet)
			}
			subnets[ep.Subnet] = root
			if ips[root] == nil {
				ips[root] = map[netip.Addr]string{}
			}
			if o, ok := ips[root][ep.IP]; ok {
				t.Fatalf("address %s given to %s and %s", ep.IP, o, ep.ContainerID)
			}
			ips[root][ep.IP] = ep.ContainerID
			hp := ep.Ports[0].HostPort
			if o, ok := ports[hp]; ok {
				t.Fatalf("host port %d given to %s and %s", hp, o, ep.ContainerID)
			}
			ports[hp] = ep.ContainerID
			n++
		}
		if n != jobs[i].N {
			t.Fatalf("helper %d attached %d of %d", i, n, jobs[i].N)
		}
	}
	if len(bridges) != 2 || bridges[e1.m.Root] == bridges[e2.m.Root] || len(subnets) != 2 {
		t.Fatalf("bridges %v subnets %v", bridges, subnets)
	}
	for _, p := range procs {
		p.in.Close()
		if err := p.cmd.Wait(); err != nil {
			t.Fatalf("helper: %v", err)
		}
	}
}

// ---- files ----

func TestResolvConf(t *testing.T) {
	host := []byte("# host\nnameserver 127.0.0.53\nnameserver ::1\nnameserver 192.0.2.53\nnameserver 2001:db8::1\nsearch example.com corp\noptions edns0 trust-ad\n")
	got := string(ResolvConf(host, nil, nil, nil))
	want := "# host\nsearch example.com corp\nnameserver 192.0.2.53\noptions edns0 trust-ad\n"
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	got = string(ResolvConf([]byte("nameserver 127.0.0.53\noptions edns0\n"), nil, nil, nil))
	if got != "nameserver 8.8.8.8\nnameserver 8.8.4.4\noptions edns0\n" {
		t.Fatalf("fallback: %q", got)
	}
	got = string(ResolvConf(host, []string{"192.0.2.1"}, []string{"."}, []string{"ndots:2"}))
	if got != "# host\nnameserver 192.0.2.1\noptions ndots:2\n" {
		t.Fatalf("overrides: %q", got)
	}
	got = string(ResolvConf([]byte("domain local.lan\nnameserver 192.0.2.9\n"), nil, nil, nil))
	if got != "search local.lan\nnameserver 192.0.2.9\n" {
		t.Fatalf("domain: %q", got)
	}
}

func TestHosts(t *testing.T) {
	got := string(Hosts([]HostsEntry{
		{IP: netip.MustParseAddr("172.17.0.2"), Names: []string{"abc123", "web"}},
		{IP: netip.MustParseAddr("192.0.2.7"), Names: []string{"extra"}},
		{Names: []string{"skipped"}},
		{IP: netip.MustParseAddr("172.17.0.3"), Names: []string{"", "db", "db"}},
	}))
	want := hostsHeader + "172.17.0.2\tabc123 web\n192.0.2.7\textra\n172.17.0.3\tdb\n"
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

// TestCleanupCrashedProcess: a process that attached endpoints (owned by
// itself) and published ports is killed; Cleanup in another process
// reclaims its addresses, host ports and rules.
func TestCleanupCrashedProcess(t *testing.T) {
	e := newEnv(t)
	e.network(NetworkConfig{Name: "shared"})
	job := attachJob{Root: e.m.Root, RunDir: e.m.RunDir, Table: e.m.Table, Pools: e.m.Pools, Network: "shared", Prefix: "dead", N: 3}
	cmd := exec.Command("/proc/self/exe", "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=attach", "NETDEV_JOB="+jsonLine(job))
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &unix.SysProcAttr{Pdeathsig: unix.SIGKILL}
	in, _ := cmd.StdinPipe()
	defer in.Close()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	var eps []Endpoint
	for sc.Scan() && sc.Text() != "done" {
		var ep Endpoint
		if err := json.Unmarshal(sc.Bytes(), &ep); err != nil {
			t.Fatalf("helper: %s", sc.Text())
		}
		e.track(ep.HostIfName)
		eps = append(eps, ep)
	}
	if len(eps) != 3 {
		t.Fatalf("helper attached %d", len(eps))
	}
	cmd.Process.Kill()
	cmd.Wait()
	if n, _ := e.m.Network("shared"); len(n.Endpoints) != 3 {
		t.Fatalf("before cleanup: %d endpoints", len(n.Endpoints))
	}
	if err := e.m.Cleanup(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n, _ := e.m.Network("shared"); len(n.Endpoints) != 0 {
		t.Fatalf("after cleanup: %d endpoints", len(n.Endpoints))
	}
	for _, ep := range eps {
		if c := countRules(t, e.m, epTag(ep.Bridge, ep.HostIfName)); c != 0 {
			t.Fatalf("%d rules of %s left", c, ep.ContainerID)
		}
	}
	hs, _ := e.m.loadHost()
	if len(hs.Ports) != 0 {
		t.Fatalf("host ports left: %s", jsonLine(hs.Ports))
	}
	// The addresses come back: a fixed request for one of them works.
	ep := e.attach(EndpointConfig{ContainerID: "new", Network: "shared", NetNSPath: newNetNS(t), IP: eps[0].IP})
	if ep.IP != eps[0].IP {
		t.Fatalf("got %s", ep.IP)
	}
}

// TestConcurrentGoroutines attaches and detaches from many goroutines of
// one process, through one Manager.
func TestConcurrentGoroutines(t *testing.T) {
	e := newEnv(t)
	e.network(NetworkConfig{Name: "par"})
	const n = 20
	paths := make([]string, n)
	for i := range paths {
		paths[i] = newNetNS(t)
	}
	eps := make([]*Endpoint, n)
	errs := make(chan error, n)
	for i := range n {
		go func() {
			ep, err := e.m.Attach(context.Background(), EndpointConfig{ContainerID: fmt.Sprint("g", i), Network: "par",
				NetNSPath: paths[i], Ports: []PortMapping{{ContainerPort: 80, Protocol: []string{"tcp", "udp"}[i%2]}}})
			if err == nil {
				e.track(ep.HostIfName)
				eps[i] = ep
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	ips, ports := map[netip.Addr]bool{}, map[string]bool{}
	for _, ep := range eps {
		k := fmt.Sprint(ep.Ports[0].Protocol, ep.Ports[0].HostPort)
		if ips[ep.IP] || ports[k] {
			t.Fatalf("duplicate %s or %s", ep.IP, k)
		}
		ips[ep.IP], ports[k] = true, true
	}
	for i := range n {
		go func() { errs <- e.m.Detach(context.Background(), eps[i]) }()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// TestBridgeRestored: a bridge deleted behind berth's back is made again,
// with its rules, at the next Attach.
func TestBridgeRestored(t *testing.T) {
	e := newEnv(t)
	n := e.network(NetworkConfig{Name: "r"})
	a := startCtr(t)
	e.attach(EndpointConfig{ContainerID: "a", Network: "r", Pid: a.Pid})
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	br, err := h.LinkByName(n.Bridge)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkDel(br); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Detach(context.Background(), &Endpoint{Network: "r", ContainerID: "a"}); err != nil {
		t.Fatal(err)
	}
	a.must("serve-tcp 8080")
	ep := e.attach(EndpointConfig{ContainerID: "a2", Network: "r", Pid: a.Pid, Ports: []PortMapping{{ContainerPort: 8080}}})
	if got := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", ep.Ports[0].HostPort)); !strings.HasPrefix(got, "hello ") {
		t.Fatalf("after restore: %q", got)
	}
	if c := countRules(t, e.m, netTag(n.Bridge)); c < 5 {
		t.Fatalf("%d network rules after restore", c)
	}
}

// TestUDPStaleConntrack: a UDP flow the host sent to a port before it was
// published must reach the container once it is (Attach forgets the stale
// conntrack entry, which would otherwise keep the flow untranslated).
func TestUDPStaleConntrack(t *testing.T) {
	e := newEnv(t)
	e.network(NetworkConfig{Name: "u"})
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(pc.LocalAddr().(*net.UDPAddr).Port)
	pc.Close()
	c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(port)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("early")) // nobody listens: conntrack now tracks this flow untranslated
	time.Sleep(50 * time.Millisecond)
	a := startCtr(t)
	a.must("serve-udp 5353")
	e.attach(EndpointConfig{ContainerID: "a", Network: "u", Pid: a.Pid,
		Ports: []PortMapping{{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: port, ContainerPort: 5353, Protocol: "udp"}}})
	buf := make([]byte, 1500)
	for range 10 {
		c.Write([]byte("ping"))
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if n, err := c.Read(buf); err == nil {
			if !strings.HasPrefix(string(buf[:n]), "udp ") {
				t.Fatalf("answer %q", buf[:n])
			}
			return
		}
	}
	t.Fatal("the flow seen before publishing never reached the container")
}
