//go:build linux

package netdev

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// BenchmarkAttachDetach measures one Attach plus one Detach of a container
// (a fresh bare network namespace each time, made outside the timed part)
// on a user-defined network, and reports the median and the two halves.
func BenchmarkAttachDetach(b *testing.B) {
	e := newEnv(b)
	e.network(NetworkConfig{Name: "bench"})
	ctx := context.Background()
	var total, att, det []time.Duration
	for i := 0; b.Loop(); i++ {
		nsh, err := makeNetNS()
		if err != nil {
			b.Fatal(err)
		}
		ns := fmt.Sprintf("/proc/self/fd/%d", int(nsh))
		t0 := time.Now()
		ep, err := e.m.Attach(ctx, EndpointConfig{ContainerID: fmt.Sprint("c", i), Network: "bench", NetNSPath: ns})
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := e.m.Detach(ctx, ep); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		nsh.Close()
		total = append(total, t2.Sub(t0))
		att = append(att, t1.Sub(t0))
		det = append(det, t2.Sub(t1))
	}
	b.ReportMetric(median(total).Seconds()*1e3, "ms/median")
	b.ReportMetric(median(att).Seconds()*1e3, "ms/attach")
	b.ReportMetric(median(det).Seconds()*1e3, "ms/detach")
}

// BenchmarkAttachDetachSameNS reuses one namespace: each Attach waits for
// the previous veth pair to be deleted (the kernel's 10-20 ms per link).
func BenchmarkAttachDetachSameNS(b *testing.B) {
	e := newEnv(b)
	e.network(NetworkConfig{Name: "bench"})
	ns := newNetNS(b)
	ctx := context.Background()
	var total []time.Duration
	for i := 0; b.Loop(); i++ {
		t0 := time.Now()
		ep, err := e.m.Attach(ctx, EndpointConfig{ContainerID: fmt.Sprint("c", i), Network: "bench", NetNSPath: ns})
		if err != nil {
			b.Fatal(err)
		}
		if err := e.m.Detach(ctx, ep); err != nil {
			b.Fatal(err)
		}
		total = append(total, time.Since(t0))
	}
	b.ReportMetric(median(total).Seconds()*1e3, "ms/median")
}

// BenchmarkAttachDetachPorts is the same with one published port.
func BenchmarkAttachDetachPorts(b *testing.B) {
	e := newEnv(b)
	e.network(NetworkConfig{Name: "bench"})
	ctx := context.Background()
	var total []time.Duration
	for i := 0; b.Loop(); i++ {
		nsh, err := makeNetNS()
		if err != nil {
			b.Fatal(err)
		}
		ns := fmt.Sprintf("/proc/self/fd/%d", int(nsh))
		t0 := time.Now()
		ep, err := e.m.Attach(ctx, EndpointConfig{ContainerID: fmt.Sprint("c", i), Network: "bench", NetNSPath: ns,
			Ports: []PortMapping{{ContainerPort: 80}}})
		if err != nil {
			b.Fatal(err)
		}
		if err := e.m.Detach(ctx, ep); err != nil {
			b.Fatal(err)
		}
		total = append(total, time.Since(t0))
		nsh.Close()
	}
	b.ReportMetric(median(total).Seconds()*1e3, "ms/median")
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkThroughput streams data between two containers on one bridge
// network, and between two namespaces joined directly by a veth pair,
// alternating the two so that both see the same load on a shared machine;
// it reports both rates and their ratio.
func BenchmarkThroughput(b *testing.B) {
	const size = 128 << 20
	e := newEnv(b)
	e.network(NetworkConfig{Name: "tp"})
	bsrc, bdst := startCtr(b), startCtr(b)
	e.attach(EndpointConfig{ContainerID: "src", Network: "tp", Pid: bsrc.Pid})
	bep := e.attach(EndpointConfig{ContainerID: "dst", Network: "tp", Pid: bdst.Pid})

	vsrc, vdst := startCtr(b), startCtr(b)
	sns, err := netns.GetFromPid(vsrc.Pid)
	if err != nil {
		b.Fatal(err)
	}
	defer sns.Close()
	dns, err := netns.GetFromPid(vdst.Pid)
	if err != nil {
		b.Fatal(err)
	}
	defer dns.Close()
	sh, err := netlink.NewHandleAt(sns, unix.NETLINK_ROUTE)
	if err != nil {
		b.Fatal(err)
	}
	defer sh.Close()
	dh, err := netlink.NewHandleAt(dns, unix.NETLINK_ROUTE)
	if err != nil {
		b.Fatal(err)
	}
	defer dh.Close()
	la := netlink.NewLinkAttrs()
	la.Name = "eth0"
	if err := sh.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "eth0", PeerNamespace: netlink.NsFd(dns)}); err != nil {
		b.Fatal(err)
	}
	// Addresses inside the test's own two namespaces, which have no other link.
	a1, a2 := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.0.2")
	for _, x := range []struct {
		h *netlink.Handle
		a netip.Addr
	}{{sh, a1}, {dh, a2}} {
		l, err := x.h.LinkByName("eth0")
		if err != nil {
			b.Fatal(err)
		}
		if err := x.h.AddrAdd(l, &netlink.Addr{IPNet: ipNet(x.a, 24)}); err != nil {
			b.Fatal(err)
		}
		x.h.LinkSetUp(l)
		x.h.LinkSetUp(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: 1}})
	}
	bdst.must("sink 9000")
	vdst.must("sink 9000")
	vsrc.do("dial %s:1", a2) // settle: the link passes traffic (refused is fine)
	send := func(src *ctr, dst netip.Addr) float64 {
		r := src.must("send %s:9000 %d", dst, size)
		f, err := strconv.ParseFloat(r, 64)
		if err != nil {
			b.Fatal(r)
		}
		return f
	}
	b.SetBytes(2 * size)
	var bsecs, vsecs float64
	for b.Loop() {
		bsecs += send(bsrc, bep.IP)
		vsecs += send(vsrc, a2)
	}
	bridge := float64(size) * float64(b.N) / bsecs / 1e6
	veth := float64(size) * float64(b.N) / vsecs / 1e6
	b.ReportMetric(bridge, "MB/s-bridge")
	b.ReportMetric(veth, "MB/s-veth")
	b.ReportMetric(bridge/veth, "bridge/veth")
}
