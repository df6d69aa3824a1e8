//go:build linux

package netdev

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/berthrt/berth/internal/testutil"
)

// The test binary doubles as the "container" process: re-executed with
// NETDEV_HELPER set, in a new network (and mount) namespace, it runs
// commands read from stdin, one reply line each.

const helperEnv = "NETDEV_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "ctr":
		runContainerHelper()
	case "attach":
		runAttachHelper()
	default:
		fmt.Fprintln(os.Stderr, "unknown helper")
		os.Exit(2)
	}
	os.Exit(0)
}

func runContainerHelper() {
	in := bufio.NewScanner(os.Stdin)
	out := bufio.NewWriter(os.Stdout)
	reply := func(format string, a ...any) {
		fmt.Fprintf(out, format+"\n", a...)
		out.Flush()
	}
	reply("ready %d", os.Getpid())
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "hosts": // hosts PATH: bind the file on /etc/hosts, stub resolv.conf
			err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, "")
			if err == nil {
				err = unix.Mount(f[1], "/etc/hosts", "", unix.MS_BIND, "")
			}
			if err == nil {
				// No name server at all: a missing name fails at once and
				// nothing is ever sent off the host.
				stub := f[1] + ".resolv"
				if err = os.WriteFile(stub, []byte("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"), 0o644); err == nil {
					err = unix.Mount(stub, "/etc/resolv.conf", "", unix.MS_BIND, "")
				}
			}
			reply("%v", errStr(err))
		case "serve-tcp": // serve-tcp PORT: HTTP server answering "hello <remote addr>"
			l, err := net.Listen("tcp4", ":"+f[1])
			if err == nil {
				go http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					fmt.Fprintf(w, "hello %s", r.RemoteAddr)
				}))
			}
			reply("%v", errStr(err))
		case "serve-udp": // serve-udp PORT: answers "udp <remote addr>"
			c, err := net.ListenPacket("udp4", ":"+f[1])
			if err == nil {
				go func() {
					buf := make([]byte, 1500)
					for {
						_, a, err := c.ReadFrom(buf)
						if err != nil {
							return
						}
						c.WriteTo([]byte("udp "+a.String()), a)
					}
				}()
			}
			reply("%v", errStr(err))
		case "get": // get URL
			cl := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}
			resp, err := cl.Get(f[1])
			if err != nil {
				reply("err %v", err)
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			reply("%s", b)
		case "dial": // dial ADDR: TCP connect
			c, err := net.DialTimeout("tcp4", f[1], 700*time.Millisecond)
			if err == nil {
				c.Close()
			}
			reply("%v", errStr(err))
		case "resolve": // resolve NAME through the Go resolver
			r := &net.Resolver{PreferGo: true}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			addrs, err := r.LookupHost(ctx, f[1])
			cancel()
			if err != nil {
				reply("err %v", err)
			} else {
				reply("%s", strings.Join(addrs, ","))
			}
		case "sink": // sink PORT: accept connections and discard what they send
			l, err := net.Listen("tcp4", ":"+f[1])
			if err == nil {
				go func() {
					for {
						c, err := l.Accept()
						if err != nil {
							return
						}
						go func() { io.Copy(io.Discard, c); c.Close() }()
					}
				}()
			}
			reply("%v", errStr(err))
		case "send": // send ADDR BYTES: stream BYTES to ADDR, reply with the seconds taken
			n, _ := strconv.ParseInt(f[2], 10, 64)
			c, err := net.DialTimeout("tcp4", f[1], 2*time.Second)
			if err != nil {
				reply("err %v", err)
				continue
			}
			buf := make([]byte, 256<<10)
			start := time.Now()
			for sent := int64(0); sent < n && err == nil; sent += int64(len(buf)) {
				_, err = c.Write(buf)
			}
			if err == nil {
				err = c.(*net.TCPConn).CloseWrite()
				io.Copy(io.Discard, c) // wait for the receiver to finish
			}
			c.Close()
			if err != nil {
				reply("err %v", err)
			} else {
				reply("%f", time.Since(start).Seconds())
			}
		case "cat": // cat PATH: the file, newlines as "|"
			b, err := os.ReadFile(f[1])
			if err != nil {
				reply("err %v", err)
			} else {
				reply("%s", strings.ReplaceAll(string(b), "\n", "|"))
			}
		case "addrs":
			ifs, _ := net.Interfaces()
			var s []string
			for _, i := range ifs {
				as, _ := i.Addrs()
				for _, a := range as {
					s = append(s, i.Name+"="+a.String())
				}
				if len(as) == 0 {
					s = append(s, i.Name)
				}
			}
			reply("%s", strings.Join(s, " "))
		default:
			reply("err unknown command")
		}
	}
}

func errStr(err error) string {
	if err == nil {
		return "ok"
	}
	return "err " + err.Error()
}

// ctr is a fake container: a helper process in its own namespaces.
type ctr struct {
	t   testing.TB
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
	mu  sync.Mutex
	Pid int
}

func startCtr(t testing.TB) *ctr {
	t.Helper()
	cmd := exec.Command("/proc/self/exe", "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=ctr")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNET | syscall.CLONE_NEWNS,
		Pdeathsig:  syscall.SIGKILL,
	}
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	outp, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &ctr{t: t, cmd: cmd, in: in, out: bufio.NewReader(outp), Pid: cmd.Process.Pid}
	t.Cleanup(c.stop)
	if l := c.line(); !strings.HasPrefix(l, "ready") {
		t.Fatalf("helper: %q", l)
	}
	return c
}

func (c *ctr) line() string {
	l, err := c.out.ReadString('\n')
	if err != nil {
		c.t.Fatalf("helper %d: %v", c.Pid, err)
	}
	return strings.TrimSuffix(l, "\n")
}

// do runs a command in the container and returns its reply.
func (c *ctr) do(format string, a ...any) string {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := fmt.Fprintf(c.in, format+"\n", a...); err != nil {
		c.t.Fatalf("helper %d: %v", c.Pid, err)
	}
	return c.line()
}

func (c *ctr) must(format string, a ...any) string {
	c.t.Helper()
	r := c.do(format, a...)
	if strings.HasPrefix(r, "err") {
		c.t.Fatalf("%s: %s", fmt.Sprintf(format, a...), r)
	}
	return r
}

func (c *ctr) stop() {
	if c.cmd.ProcessState != nil {
		return
	}
	c.in.Close()
	c.cmd.Process.Kill()
	c.cmd.Wait()
}

// testEnv is a Manager with a private root, run directory, table and
// address pool, torn down and leak-checked in t.Cleanup.
type testEnv struct {
	t     testing.TB
	m     *Manager
	mu    sync.Mutex
	links map[string]bool // every bridge and veth created, to check they are gone
	// skipTableCheck: another env shares the table and checks it.
	skipTableCheck bool
}

func newEnv(t testing.TB) *testEnv {
	t.Helper()
	testutil.RequiresRoot(t)
	e := &testEnv{t: t, links: map[string]bool{}}
	e.m = &Manager{
		Root:   t.TempDir(),
		RunDir: t.TempDir(),
		Table:  "berth-t" + randHex(8),
		Pools:  []Pool{{Base: freeTestBase(t), Size: 24}},
	}
	t.Cleanup(e.teardown)
	return e
}

// freeTestBase picks a 10.x.0.0/16 overlapping no route of the host, so
// tests running in parallel (in this process and others) rarely meet.
func freeTestBase(t testing.TB) netip.Prefix {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	routes, err := retryDump(func() ([]netlink.Route, error) {
		return h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		t.Fatal(err)
	}
	for range 200 {
		var b [1]byte
		_, _ = rand.Read(b[:])
		cand := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 100 + b[0]%150, 0, 0}), 16)
		ok := true
		for _, r := range routes {
			if r.Dst == nil {
				continue
			}
			if p, okp := prefixOf(r.Dst); okp && p.Bits() > 0 && p.Overlaps(cand) {
				ok = false
			}
		}
		if ok {
			return cand
		}
	}
	t.Fatal("no free 10.x/16 for the test")
	return netip.Prefix{}
}

func (e *testEnv) network(cfg NetworkConfig) *Network {
	e.t.Helper()
	n, err := e.m.CreateNetwork(context.Background(), cfg)
	if err != nil {
		e.t.Fatalf("CreateNetwork %s: %v", cfg.Name, err)
	}
	e.track(n.Bridge)
	return n
}

func (e *testEnv) track(link string) {
	e.mu.Lock()
	e.links[link] = true
	e.mu.Unlock()
}

func (e *testEnv) attach(cfg EndpointConfig) *Endpoint {
	e.t.Helper()
	ep, err := e.m.Attach(context.Background(), cfg)
	if err != nil {
		e.t.Fatalf("Attach %s: %v", cfg.ContainerID, err)
	}
	e.track(ep.HostIfName)
	return ep
}

// teardown removes every endpoint and network, then checks that no link,
// rule or table is left; it also force-removes leftovers so a failed test
// leaves the host clean.
func (e *testEnv) teardown() {
	t := e.t
	ctx := context.Background()
	nets, err := e.m.Networks()
	if err != nil {
		t.Errorf("teardown: %v", err)
	}
	for _, n := range nets {
		for i := range n.Endpoints {
			if err := e.m.Detach(ctx, &n.Endpoints[i]); err != nil {
				t.Errorf("teardown: detach %s: %v", n.Endpoints[i].ContainerID, err)
			}
		}
		if err := e.m.RemoveNetwork(ctx, n.Name); err != nil {
			t.Errorf("teardown: remove network %s: %v", n.Name, err)
		}
	}
	e.checkClean()
	e.m.Close()
}

func (e *testEnv) checkClean() {
	t := e.t
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		t.Error(err)
		return
	}
	defer h.Close()
	e.mu.Lock()
	defer e.mu.Unlock()
	for name := range e.links {
		if l, err := h.LinkByName(name); err == nil {
			t.Errorf("link %s survived", name)
			h.LinkDel(l)
		}
	}
	addrs, err := retryDump(func() ([]netlink.Addr, error) { return h.AddrList(nil, netlink.FAMILY_V4) })
	if err != nil {
		t.Error(err)
	}
	for _, a := range addrs {
		if e.skipTableCheck {
			break // the env it shares a pool with is still up
		}
		p, _ := prefixOf(a.IPNet)
		for _, pool := range e.m.Pools {
			if pool.Base.Overlaps(p) {
				t.Errorf("address %s survived on link %d", a.IPNet, a.LinkIndex)
			}
		}
	}
	c, err := nftables.New()
	if err != nil {
		t.Error(err)
		return
	}
	if e.skipTableCheck {
		return
	}
	if _, err := c.ListTableOfFamily(e.m.Table, nftables.TableFamilyIPv4); err == nil {
		t.Errorf("nftables table %s survived", e.m.Table)
		c.DelTable(&nftables.Table{Name: e.m.Table, Family: nftables.TableFamilyIPv4})
		c.Flush()
	}
}

// newNetNS makes a bare network namespace (no process in it) and returns
// a path to it, valid until the test ends.
func newNetNS(t testing.TB) string {
	t.Helper()
	ns, err := makeNetNS()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	return fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), int(ns))
}

// makeNetNS creates a network namespace on a locked thread and returns to
// the original one; a thread that cannot return is never unlocked, so Go
// discards it instead of reusing it.
func makeNetNS() (netns.NsHandle, error) {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return -1, err
	}
	defer orig.Close()
	ns, err := netns.New()
	if err != nil {
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		return -1, err
	}
	if err := netns.Set(orig); err != nil {
		ns.Close()
		return -1, err
	}
	runtime.UnlockOSThread()
	return ns, nil
}

func jsonLine(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
