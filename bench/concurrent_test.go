//go:build linux

package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthrt/berth"
)

// BenchmarkBerthConcurrent100 starts 100 containers running `true` at
// once (create + start + wait + delete each, network none) and reports
// the median time until all of them are done.
func BenchmarkBerthConcurrent100(b *testing.B) {
	rt := newRuntime(b)
	benchConcurrent(b, rt, toolbox(b, rt), []string{"/bin/toolbox", "true"})
}

// BenchmarkBerthConcurrent100Busybox is BenchmarkBerthConcurrent100 with
// busybox's `true`, a static C program (the toolbox's is a Go program).
func BenchmarkBerthConcurrent100Busybox(b *testing.B) {
	rt := newRuntime(b)
	benchConcurrent(b, rt, busybox(b, rt), []string{"/bin/true"})
}

// BenchmarkBerthConcurrent100BusyboxNoSpare is the same without spare
// inits (berth.Config.NoSpareInit).
func BenchmarkBerthConcurrent100BusyboxNoSpare(b *testing.B) {
	rt := newRuntimeWith(b, berth.Config{NoSpareInit: true})
	benchConcurrent(b, rt, busybox(b, rt), []string{"/bin/true"})
}

func benchConcurrent(b *testing.B, rt *berth.Runtime, img *berth.Image, cmd []string) {
	const n = 100
	ctx := context.Background()
	cfg := berth.ContainerConfig{Image: img, Cmd: cmd, NetworkMode: "none"}
	var d []time.Duration
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for j := 0; j < n; j++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := rt.Run(ctx, cfg); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		d = append(d, time.Since(t0))
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
	}
	reportCPU(b, cpu0)
	reportMedianAs(b, d, "total-ms")
}

// BenchmarkBerthSupervisorPSS reports the proportional set size of idle
// containers' supervisors (their PID 1, seen from the host): what each
// running container costs the host in memory beyond its own processes.
// Pages of the binary shared with the owner and the other supervisors count
// by their share, as in smaps_rollup, so the figure falls as containers are
// added: pss1-MB is one container alone beside its owner, pss10-MB the mean
// of 10 running at once, anon-MB the private part (heap, stacks) of those.
func BenchmarkBerthSupervisorPSS(b *testing.B) {
	const n = 10
	rt := newRuntime(b)
	img := toolbox(b, rt)
	ctx := context.Background()
	var one, ten, anon float64
	for i := 0; i < b.N; i++ {
		var pids []int
		var cs []*berth.Container
		for j := 0; j < n; j++ {
			c, err := rt.Create(ctx, berth.ContainerConfig{Image: img, Cmd: []string{"/bin/toolbox", "sleep", "600"}, NetworkMode: "none"})
			if err != nil {
				b.Fatal(err)
			}
			cs = append(cs, c)
			if err := c.Start(ctx); err != nil {
				b.Fatal(err)
			}
			pids = append(pids, c.State().Pid)
			if j == 0 {
				time.Sleep(200 * time.Millisecond) // idle: past its start-up
				m, err := smapsRollup(pids[0])
				if err != nil {
					b.Fatal(err)
				}
				one += float64(m["Pss"]) / 1024
			}
		}
		time.Sleep(200 * time.Millisecond)
		for _, pid := range pids {
			m, err := smapsRollup(pid)
			if err != nil {
				b.Fatal(err)
			}
			if os.Getenv("BERTH_BENCH_SMAPS") != "" {
				b.Logf("supervisor %d: %v", pid, m)
			}
			ten += float64(m["Pss"]) / 1024 / n
			anon += float64(m["Pss_Anon"]) / 1024 / n
		}
		for _, c := range cs {
			_ = c.Delete(context.Background(), berth.DeleteOptions{Force: true})
		}
	}
	b.ReportMetric(one/float64(b.N), "pss1-MB")
	b.ReportMetric(ten/float64(b.N), "pss10-MB")
	b.ReportMetric(anon/float64(b.N), "anon-MB")
}

// smapsRollup reads /proc/<pid>/smaps_rollup: field -> kB.
func smapsRollup(pid int) (map[string]int, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		if n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB")); err == nil {
			m[k] = n
		}
	}
	if _, ok := m["Pss"]; !ok {
		return nil, fmt.Errorf("pid %d: no Pss in smaps_rollup", pid)
	}
	return m, nil
}
