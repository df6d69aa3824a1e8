//go:build linux

package cgroup

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/berthrt/berth/errdefs"
)

// Stats is a sample of what a group uses. Counters the host lacks are 0.
type Stats struct {
	Time   time.Time
	Memory MemoryStats
	CPU    CPUStats
	Pids   PidsStats
	IO     IOStats
	// SystemCPU is the host's cpu time over all cpus in nanoseconds
	// (/proc/stat), and OnlineCPUs the number of cpus: with CPU.Total they
	// give `docker stats`' CPU % (see CPUPercent).
	SystemCPU  uint64
	OnlineCPUs int
}

// CPUPercent is the group's cpu use between prev and s as `docker stats`
// shows it: 100 is one cpu fully used.
func (s *Stats) CPUPercent(prev *Stats) float64 {
	if prev == nil || s.SystemCPU <= prev.SystemCPU || s.CPU.Total < prev.CPU.Total {
		return 0
	}
	return float64(s.CPU.Total-prev.CPU.Total) / float64(s.SystemCPU-prev.SystemCPU) * float64(s.OnlineCPUs) * 100
}

// MemoryPercent is usage without inactive page cache over the limit, as
// `docker stats` shows it; 0 when the group has no memory limit.
func (s *Stats) MemoryPercent() float64 {
	if s.Memory.Limit == 0 {
		return 0
	}
	used := s.Memory.Usage
	if s.Memory.InactiveFile < used {
		used -= s.Memory.InactiveFile
	}
	return float64(used) / float64(s.Memory.Limit) * 100
}

// systemCPU reads the host's total cpu time and cpu count from /proc/stat.
func systemCPU() (ns uint64, cpus int) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || !strings.HasPrefix(f[0], "cpu") {
			continue
		}
		if f[0] != "cpu" {
			cpus++
			continue
		}
		var ticks uint64
		for _, v := range f[1:min(len(f), 8)] { // user..softirq, as Docker
			n, _ := strconv.ParseUint(v, 10, 64)
			ticks += n
		}
		ns = ticks * (1e9 / 100) // USER_HZ is 100 on Linux
	}
	return ns, cpus
}

// MemoryStats are in bytes.
type MemoryStats struct {
	// Usage is the memory charged to the group, page cache included
	// (v1 memory.usage_in_bytes, v2 memory.current).
	Usage uint64
	// MaxUsage is the peak usage (v1 memory.max_usage_in_bytes, v2 memory.peak).
	MaxUsage uint64
	// Limit is the hard limit; 0 when there is none.
	Limit uint64
	// Cache is page cache (v1 total_cache, v2 file); RSS anonymous memory
	// (v1 total_rss, v2 anon). InactiveFile is what `docker stats`
	// subtracts from Usage.
	Cache, RSS, InactiveFile uint64
	// Swap is swap in use (v1 memsw usage minus usage, v2 memory.swap.current).
	Swap uint64
	// OOMKills counts processes the OOM killer killed in the group.
	OOMKills uint64
}

// CPUStats are in nanoseconds.
type CPUStats struct {
	Total, User, System uint64
	// PerCPU is the usage per cpu (v1 cpuacct.usage_percpu; v2 has none).
	PerCPU []uint64
	// Periods is the number of CFS periods with a quota, ThrottledPeriods
	// of those the group ran out of quota in, ThrottledTime the total time
	// it was throttled.
	Periods, ThrottledPeriods, ThrottledTime uint64
}

// PidsStats counts tasks; Limit 0 means none.
type PidsStats struct{ Current, Limit uint64 }

// IOStats sums block io over all devices, with the figures per device.
type IOStats struct {
	ReadBytes, WriteBytes, ReadOps, WriteOps uint64
	Devices                                  []IODeviceStats
}

// IODeviceStats is the block io of one device.
type IODeviceStats struct {
	Major, Minor                             int64
	ReadBytes, WriteBytes, ReadOps, WriteOps uint64
}

// Stats samples the group's usage. It fails with errdefs.ErrNotFound once
// the group is gone.
func (c *Cgroup) Stats() (*Stats, error) {
	if !exists(c.procsDir()) {
		return nil, fmt.Errorf("cgroup: stats of %s: %w", c.Path(), errdefs.ErrNotFound)
	}
	s := &Stats{Time: time.Now()}
	s.SystemCPU, s.OnlineCPUs = systemCPU()
	if c.h.v2limits() {
		c.statsV2(s)
	} else {
		c.statsV1(s)
	}
	return s, nil
}

func readUint(p string) uint64 {
	b, err := os.ReadFile(p)
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseUint(string(bytes.TrimSpace(b)), 10, 64)
	return n
}

func readFileQuiet(p string) []byte {
	b, _ := os.ReadFile(p)
	return b
}

func (c *Cgroup) statsV1(s *Stats) {
	if d := c.v1["memory"]; d != "" {
		m := &s.Memory
		m.Usage = readUint(filepath.Join(d, "memory.usage_in_bytes"))
		m.MaxUsage = readUint(filepath.Join(d, "memory.max_usage_in_bytes"))
		if l := readUint(filepath.Join(d, "memory.limit_in_bytes")); l < 1<<62 {
			m.Limit = l
		}
		st := readFileQuiet(filepath.Join(d, "memory.stat"))
		m.Cache = keyValue(st, "total_cache")
		m.RSS = keyValue(st, "total_rss")
		m.InactiveFile = keyValue(st, "total_inactive_file")
		if sw := readUint(filepath.Join(d, "memory.memsw.usage_in_bytes")); sw > m.Usage {
			m.Swap = sw - m.Usage
		}
		m.OOMKills = keyValue(readFileQuiet(filepath.Join(d, "memory.oom_control")), "oom_kill")
	}
	if d := c.v1["cpuacct"]; d != "" {
		s.CPU.Total = readUint(filepath.Join(d, "cpuacct.usage"))
		s.CPU.User = readUint(filepath.Join(d, "cpuacct.usage_user"))
		s.CPU.System = readUint(filepath.Join(d, "cpuacct.usage_sys"))
		for _, f := range strings.Fields(string(readFileQuiet(filepath.Join(d, "cpuacct.usage_percpu")))) {
			n, _ := strconv.ParseUint(f, 10, 64)
			s.CPU.PerCPU = append(s.CPU.PerCPU, n)
		}
	}
	if d := c.v1["cpu"]; d != "" {
		st := readFileQuiet(filepath.Join(d, "cpu.stat"))
		s.CPU.Periods = keyValue(st, "nr_periods")
		s.CPU.ThrottledPeriods = keyValue(st, "nr_throttled")
		s.CPU.ThrottledTime = keyValue(st, "throttled_time")
	}
	if d := c.v1["pids"]; d != "" {
		s.Pids.Current = readUint(filepath.Join(d, "pids.current"))
		s.Pids.Limit = readUint(filepath.Join(d, "pids.max")) // "max" parses as 0
	}
	if d := c.v1["blkio"]; d != "" {
		devs := map[[2]int64]*IODeviceStats{}
		parseBlkio(readFileQuiet(filepath.Join(d, "blkio.throttle.io_service_bytes_recursive")), devs, true)
		parseBlkio(readFileQuiet(filepath.Join(d, "blkio.throttle.io_serviced_recursive")), devs, false)
		s.IO = sumIO(devs)
	}
}

// parseBlkio reads "maj:min Read|Write|... n" lines.
func parseBlkio(b []byte, devs map[[2]int64]*IODeviceStats, bytes_ bool) {
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) != 3 {
			continue
		}
		maj, min, ok := parseDev(f[0])
		if !ok {
			continue
		}
		n, _ := strconv.ParseUint(f[2], 10, 64)
		d := dev(devs, maj, min)
		switch {
		case f[1] == "Read" && bytes_:
			d.ReadBytes = n
		case f[1] == "Write" && bytes_:
			d.WriteBytes = n
		case f[1] == "Read":
			d.ReadOps = n
		case f[1] == "Write":
			d.WriteOps = n
		}
	}
}

func dev(devs map[[2]int64]*IODeviceStats, maj, min int64) *IODeviceStats {
	k := [2]int64{maj, min}
	if devs[k] == nil {
		devs[k] = &IODeviceStats{Major: maj, Minor: min}
	}
	return devs[k]
}

func parseDev(s string) (int64, int64, bool) {
	a, b, ok := strings.Cut(s, ":")
	if !ok {
		return 0, 0, false
	}
	maj, err1 := strconv.ParseInt(a, 10, 64)
	min, err2 := strconv.ParseInt(b, 10, 64)
	return maj, min, err1 == nil && err2 == nil
}

func sumIO(devs map[[2]int64]*IODeviceStats) IOStats {
	var io IOStats
	for _, d := range devs {
		io.ReadBytes += d.ReadBytes
		io.WriteBytes += d.WriteBytes
		io.ReadOps += d.ReadOps
		io.WriteOps += d.WriteOps
		io.Devices = append(io.Devices, *d)
	}
	return io
}

func (c *Cgroup) statsV2(s *Stats) {
	d := c.v2
	m := &s.Memory
	m.Usage = readUint(filepath.Join(d, "memory.current"))
	m.MaxUsage = readUint(filepath.Join(d, "memory.peak"))
	m.Limit = readUint(filepath.Join(d, "memory.max"))
	st := readFileQuiet(filepath.Join(d, "memory.stat"))
	m.Cache = keyValue(st, "file")
	m.RSS = keyValue(st, "anon")
	m.InactiveFile = keyValue(st, "inactive_file")
	m.Swap = readUint(filepath.Join(d, "memory.swap.current"))
	m.OOMKills = keyValue(readFileQuiet(filepath.Join(d, "memory.events")), "oom_kill")

	cs := readFileQuiet(filepath.Join(d, "cpu.stat"))
	s.CPU.Total = keyValue(cs, "usage_usec") * 1000
	s.CPU.User = keyValue(cs, "user_usec") * 1000
	s.CPU.System = keyValue(cs, "system_usec") * 1000
	s.CPU.Periods = keyValue(cs, "nr_periods")
	s.CPU.ThrottledPeriods = keyValue(cs, "nr_throttled")
	s.CPU.ThrottledTime = keyValue(cs, "throttled_usec") * 1000

	s.Pids.Current = readUint(filepath.Join(d, "pids.current"))
	s.Pids.Limit = readUint(filepath.Join(d, "pids.max"))

	devs := map[[2]int64]*IODeviceStats{}
	for _, l := range strings.Split(string(readFileQuiet(filepath.Join(d, "io.stat"))), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		maj, min, ok := parseDev(f[0])
		if !ok {
			continue
		}
		dv := dev(devs, maj, min)
		for _, kv := range f[1:] {
			k, v, _ := strings.Cut(kv, "=")
			n, _ := strconv.ParseUint(v, 10, 64)
			switch k {
			case "rbytes":
				dv.ReadBytes = n
			case "wbytes":
				dv.WriteBytes = n
			case "rios":
				dv.ReadOps = n
			case "wios":
				dv.WriteOps = n
			}
		}
	}
	s.IO = sumIO(devs)
}

// Watch samples Stats every interval and sends them on the returned
// channel, which is closed when ctx is done or the group is gone. A
// receiver that falls behind misses samples rather than delaying them.
func (c *Cgroup) Watch(ctx context.Context, interval time.Duration) <-chan Stats {
	if interval <= 0 {
		interval = time.Second
	}
	ch := make(chan Stats, 1)
	go func() {
		defer close(ch)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			s, err := c.Stats()
			if err != nil {
				return
			}
			select {
			case ch <- *s:
			default:
				// Replace the sample nobody took yet.
				select {
				case <-ch:
				default:
				}
				ch <- *s
			}
			select {
			case <-ctx.Done():
				return
			case <-c.stop:
				return
			case <-t.C:
			}
		}
	}()
	return ch
}
