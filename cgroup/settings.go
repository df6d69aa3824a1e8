//go:build linux

package cgroup

import (
	"fmt"
	"sort"
	"strconv"
)

// A setting is one value written to one cgroup file. The mapping from
// Resources to settings is pure, so it is tested file by file; New writes
// the settings of the new Resources, Update only those that changed.
type setting struct {
	ctrl  string // v1 controller; "" on v2
	file  string
	key   string // distinguishes several lines of one file (per device)
	value string
	// reset is written when a later Update drops the setting; resetParent
	// means "the parent's value of the same file" (v1 cpuset).
	reset    string
	optional bool // skipped when the file does not exist (swap accounting)
	// fallback is written instead when file does not exist (bfq vs iocost).
	fallback *setting
}

func (s setting) id() string { return s.ctrl + "/" + s.file + " " + s.key }

const resetParent = "\x00parent"

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func devKey(maj, min int64) string { return itoa(maj) + ":" + itoa(min) }

// v1Settings maps r to v1 files. Only values that differ from a fresh
// group's defaults appear.
func v1Settings(r *Resources, h *host) []setting {
	var s []setting
	add := func(ctrl, file, key, value, reset string) {
		s = append(s, setting{ctrl: ctrl, file: file, key: key, value: value, reset: reset})
	}
	if r.Memory > 0 {
		add("memory", "memory.limit_in_bytes", "", itoa(r.Memory), "-1")
	}
	if sw := r.memsw(); sw > 0 && (h == nil || h.memsw) {
		add("memory", "memory.memsw.limit_in_bytes", "", itoa(sw), "-1")
	}
	if r.MemoryReservation > 0 {
		add("memory", "memory.soft_limit_in_bytes", "", itoa(r.MemoryReservation), "-1")
	}
	// A fresh group has its parent's swappiness, and the OOM killer on.
	if sw := r.swappiness(); sw >= 0 {
		add("memory", "memory.swappiness", "", itoa(sw), resetParent)
	}
	if r.OOMKillDisable {
		add("memory", "memory.oom_control", "", "1", "0")
	}
	// A fresh v1 group has 1024 shares and a 100 ms period already.
	if sh := r.shares(); sh > 0 && sh != defCPUShares {
		add("cpu", "cpu.shares", "", itoa(sh), itoa(defCPUShares))
	}
	quota, period := r.cfs()
	if period > 0 && period != defCPUPeriod {
		add("cpu", "cpu.cfs_period_us", "", itoa(period), itoa(defCPUPeriod))
	}
	if quota > 0 {
		add("cpu", "cpu.cfs_quota_us", "", itoa(quota), "-1")
	}
	if r.CpusetCpus != "" {
		add("cpuset", "cpuset.cpus", "", r.CpusetCpus, resetParent)
	}
	if r.CpusetMems != "" {
		add("cpuset", "cpuset.mems", "", r.CpusetMems, resetParent)
	}
	if p := r.pids(); p > 0 {
		add("pids", "pids.max", "", itoa(p), "max")
	}
	if r.BlkioWeight > 0 {
		file, def := "blkio.weight", "500"
		if h != nil && h.blkioWeight == "blkio.bfq.weight" {
			file, def = "blkio.bfq.weight", "100"
		}
		add("blkio", file, "", strconv.Itoa(int(r.BlkioWeight)), def)
	}
	// CFQ's weight_device drops a device's weight at 0, BFQ's at "default".
	wfile, wreset := "blkio.weight_device", " 0"
	if h != nil && h.blkioWeight == "blkio.bfq.weight" {
		wfile, wreset = "blkio.bfq.weight_device", " default"
	}
	for _, d := range r.BlkioWeightDevice {
		if d.Weight == 0 {
			continue
		}
		k := devKey(d.Major, d.Minor)
		add("blkio", wfile, k, k+" "+strconv.Itoa(int(d.Weight)), k+wreset)
	}
	for _, t := range []struct {
		file string
		l    []ThrottleDevice
	}{
		{"blkio.throttle.read_bps_device", r.BlkioDeviceReadBps},
		{"blkio.throttle.write_bps_device", r.BlkioDeviceWriteBps},
		{"blkio.throttle.read_iops_device", r.BlkioDeviceReadIOps},
		{"blkio.throttle.write_iops_device", r.BlkioDeviceWriteIOps},
	} {
		for _, d := range t.l {
			if d.Rate == 0 {
				continue
			}
			k := devKey(d.Major, d.Minor)
			add("blkio", t.file, k, k+" "+strconv.FormatUint(d.Rate, 10), k+" 0")
		}
	}
	for _, hl := range r.Hugetlb {
		add("hugetlb", "hugetlb."+hl.PageSize+".limit_in_bytes", "", strconv.FormatUint(hl.Limit, 10), "-1")
	}
	return s
}

// v2Settings maps r to cgroup v2 files, as runc and Docker do.
// MemorySwappiness and OOMKillDisable have no v2 file and are ignored, as
// Docker does.
func v2Settings(r *Resources) []setting {
	var s []setting
	add := func(file, key, value, reset string) *setting {
		s = append(s, setting{file: file, key: key, value: value, reset: reset})
		return &s[len(s)-1]
	}
	if r.Memory > 0 {
		add("memory.max", "", itoa(r.Memory), "max")
	}
	if sw := r.memsw(); sw > 0 && r.Memory > 0 {
		add("memory.swap.max", "", itoa(sw-r.Memory), "max").optional = true
	}
	if r.MemoryReservation > 0 {
		add("memory.low", "", itoa(r.MemoryReservation), "0")
	}
	if sh := r.shares(); sh > 0 {
		add("cpu.weight", "", itoa(SharesToWeight(sh)), "100")
	}
	quota, period := r.cfs()
	if quota > 0 || period > 0 {
		q := "max"
		if quota > 0 {
			q = itoa(quota)
		}
		if period == 0 {
			period = defCPUPeriod
		}
		add("cpu.max", "", q+" "+itoa(period), "max "+itoa(defCPUPeriod))
	}
	if r.CpusetCpus != "" {
		add("cpuset.cpus", "", r.CpusetCpus, "\n")
	}
	if r.CpusetMems != "" {
		add("cpuset.mems", "", r.CpusetMems, "\n")
	}
	if p := r.pids(); p > 0 {
		add("pids.max", "", itoa(p), "max")
	}
	if r.BlkioWeight > 0 {
		// BFQ takes the v1 range as is; io.weight (iocost) the converted one.
		st := add("io.bfq.weight", "", strconv.Itoa(int(r.BlkioWeight)), "100")
		st.fallback = &setting{file: "io.weight", value: "default " + itoa(BlkioWeightToIOWeight(r.BlkioWeight)), reset: "default 100"}
	}
	// Per device, one line each: "major:minor weight", "default" drops it.
	for _, d := range r.BlkioWeightDevice {
		if d.Weight == 0 {
			continue
		}
		k := devKey(d.Major, d.Minor)
		st := add("io.bfq.weight", k, k+" "+strconv.Itoa(int(d.Weight)), k+" default")
		st.fallback = &setting{file: "io.weight", key: k, value: k + " " + itoa(BlkioWeightToIOWeight(d.Weight)), reset: k + " default"}
	}
	// io.max takes all four limits of one device on one line.
	type lim struct{ rbps, wbps, riops, wiops uint64 }
	devs := map[string]*lim{}
	get := func(d ThrottleDevice) *lim {
		k := devKey(d.Major, d.Minor)
		if devs[k] == nil {
			devs[k] = &lim{}
		}
		return devs[k]
	}
	for _, d := range r.BlkioDeviceReadBps {
		get(d).rbps = d.Rate
	}
	for _, d := range r.BlkioDeviceWriteBps {
		get(d).wbps = d.Rate
	}
	for _, d := range r.BlkioDeviceReadIOps {
		get(d).riops = d.Rate
	}
	for _, d := range r.BlkioDeviceWriteIOps {
		get(d).wiops = d.Rate
	}
	keys := make([]string, 0, len(devs))
	for k := range devs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	num := func(n uint64) string {
		if n == 0 {
			return "max"
		}
		return strconv.FormatUint(n, 10)
	}
	for _, k := range keys {
		l := devs[k]
		if *l == (lim{}) {
			continue
		}
		add("io.max", k, fmt.Sprintf("%s rbps=%s wbps=%s riops=%s wiops=%s", k, num(l.rbps), num(l.wbps), num(l.riops), num(l.wiops)),
			k+" rbps=max wbps=max riops=max wiops=max")
	}
	for _, hl := range r.Hugetlb {
		add("hugetlb."+hl.PageSize+".max", "", strconv.FormatUint(hl.Limit, 10), "max")
	}
	return s
}

// diffSettings returns the writes that take a group from old to new: every
// new setting whose value changed, then the reset of every dropped one.
func diffSettings(old, new []setting) []setting {
	prev := make(map[string]string, len(old))
	for _, s := range old {
		prev[s.id()] = s.value
	}
	var out []setting
	cur := make(map[string]bool, len(new))
	for _, s := range new {
		cur[s.id()] = true
		if v, ok := prev[s.id()]; ok && v == s.value {
			continue
		}
		out = append(out, s)
	}
	for _, s := range old {
		if cur[s.id()] {
			continue
		}
		r := s
		r.value = s.reset
		if s.fallback != nil {
			fb := *s.fallback
			fb.value = fb.reset
			r.fallback = &fb
		}
		out = append(out, r)
	}
	return out
}
