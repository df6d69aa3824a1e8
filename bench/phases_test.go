//go:build linux

package bench

import (
	"context"
	"testing"
	"time"

	"github.com/berthrt/berth"
)

// BenchmarkBerthRunTruePhases is BenchmarkBerthRunTrueBusybox split into its
// steps (median of each): where a start's time goes.
func BenchmarkBerthRunTruePhases(b *testing.B) {
	rt := newRuntime(b)
	img := busybox(b, rt)
	ctx := context.Background()
	cfg := berth.ContainerConfig{Image: img, Cmd: []string{"/bin/true"}, NetworkMode: "none"}
	var create, start, wait, del []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		c, err := rt.Create(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := c.Start(ctx); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		if _, err := c.Wait(ctx); err != nil {
			b.Fatal(err)
		}
		t3 := time.Now()
		if err := c.Delete(ctx); err != nil {
			b.Fatal(err)
		}
		t4 := time.Now()
		create = append(create, t1.Sub(t0))
		start = append(start, t2.Sub(t1))
		wait = append(wait, t3.Sub(t2))
		del = append(del, t4.Sub(t3))
	}
	reportMedianAs(b, create, "create-ms")
	reportMedianAs(b, start, "start-ms")
	reportMedianAs(b, wait, "wait-ms")
	reportMedianAs(b, del, "delete-ms")
}
