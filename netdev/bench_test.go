//go:build linux

package netdev

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
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
