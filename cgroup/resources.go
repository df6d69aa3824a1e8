package cgroup

import (
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/berthrt/berth/errdefs"
)

// Resources are a container's limits, with the meaning `docker run` gives
// its flags. The zero value of every field means "no limit" (or the
// kernel's default), so Resources{} puts a process under no limit at all.
type Resources struct {
	// Memory is the hard memory limit in bytes (--memory). 0: none. At least 6 MB.
	Memory int64
	// MemoryReservation is the soft limit in bytes (--memory-reservation);
	// v1 memory.soft_limit_in_bytes, v2 memory.low. 0: none.
	MemoryReservation int64
	// MemorySwap is memory plus swap in bytes (--memory-swap). -1: unlimited
	// swap; 0 with Memory set: twice Memory, as Docker does; otherwise at
	// least Memory. Ignored where the kernel does no swap accounting.
	MemorySwap int64
	// MemorySwappiness is how readily the kernel swaps the group's
	// anonymous pages, 0..100 (--memory-swappiness; 0 swaps only to avoid
	// an OOM kill). nil or -1: the parent's value, as Docker's default.
	// v1 memory.swappiness. cgroup v2 has no per-group swappiness, so it
	// is ignored there, as Docker does (with a warning).
	MemorySwappiness *int64
	// OOMKillDisable turns the OOM killer off for the group
	// (--oom-kill-disable): a process that reaches the memory limit waits
	// for memory instead of being killed, so set Memory too. false: the
	// kernel's default, killing. v1 memory.oom_control. cgroup v2 has no
	// such control, so it is ignored there, as Docker does (with a warning).
	OOMKillDisable bool
	// CPUShares is the relative cpu weight (--cpu-shares); 0 means the
	// default 1024. Values are clamped to 2..262144 as Docker does; on v2
	// they become cpu.weight = 1 + ((shares-2)*9999)/262142.
	CPUShares int64
	// CPUPeriod is the CFS period in microseconds (--cpu-period), 1000..1000000;
	// 0: 100000.
	CPUPeriod int64
	// CPUQuota is the CFS quota in microseconds per period (--cpu-quota), at
	// least 1000; 0 or -1: no quota.
	CPUQuota int64
	// NanoCPUs is the cpu limit in billionths of a cpu (--cpus 1.5 is
	// 1500000000): quota NanoCPUs*100000/1e9 over a period of 100000. It
	// cannot be combined with CPUPeriod or CPUQuota.
	NanoCPUs int64
	// CpusetCpus and CpusetMems restrict the cpus and memory nodes
	// (--cpuset-cpus "0-2,4", --cpuset-mems). "": those of the parent.
	CpusetCpus string
	CpusetMems string
	// PidsLimit caps the number of tasks (--pids-limit). 0 or -1: no limit.
	PidsLimit int64
	// BlkioWeight is the relative block io weight (--blkio-weight), 10..1000;
	// 0: the kernel default. On v2 it becomes io.weight 1 + (w-10)*9999/990.
	BlkioWeight uint16
	// BlkioWeightDevice are weights for single devices
	// (--blkio-weight-device), overriding BlkioWeight there: v1
	// blkio.weight_device (BFQ: blkio.bfq.weight_device), v2
	// io.bfq.weight, or io.weight with the weight converted as for
	// BlkioWeight, each "major:minor weight". The device must be under a
	// scheduler that weighs groups (BFQ, or iocost on v2), or the kernel
	// refuses it: errdefs.ErrUnsupported.
	BlkioWeightDevice []WeightDevice
	// Throttles per device (--device-read-bps, --device-write-bps,
	// --device-read-iops, --device-write-iops), by major:minor numbers.
	BlkioDeviceReadBps   []ThrottleDevice
	BlkioDeviceWriteBps  []ThrottleDevice
	BlkioDeviceReadIOps  []ThrottleDevice
	BlkioDeviceWriteIOps []ThrottleDevice
	// Hugetlb limits huge page usage per page size.
	Hugetlb []HugepageLimit
	// Devices are the device access rules, applied in order on a base that
	// denies everything. nil: DefaultDevices (Docker's list). To add a
	// --device, append an allow rule to DefaultDevices(); for --privileged,
	// use AllowAllDevices().
	Devices []DeviceRule
}

// ThrottleDevice is a rate limit for one block device.
type ThrottleDevice struct {
	Major, Minor int64
	// Rate is bytes per second or io operations per second; 0 removes the limit.
	Rate uint64
}

// WeightDevice is a block io weight for one block device.
type WeightDevice struct {
	Major, Minor int64
	// Weight is 10..1000, like BlkioWeight; 0 sets none for the device.
	Weight uint16
}

// HugepageLimit caps huge page usage of one page size.
type HugepageLimit struct {
	// PageSize as the kernel names it in file names: "2MB", "1GB", "64KB".
	PageSize string
	// Limit in bytes.
	Limit uint64
}

// DeviceRule allows or denies access to a class of devices. Rules are
// matched last to first; the first match decides, and no match denies.
type DeviceRule struct {
	Allow bool
	// Type is 'c' (char), 'b' (block) or 'a' (both).
	Type rune
	// Major and Minor are the device numbers; -1 matches any.
	Major, Minor int64
	// Access is a combination of 'r' (read), 'w' (write), 'm' (mknod).
	Access string
}

// String is the rule as devices.allow and devices.deny take it:
// "c 1:3 rwm", "c 136:* rwm", or "a" for all devices.
func (d DeviceRule) String() string {
	if d.Type == 'a' {
		return "a"
	}
	num := func(b []byte, n int64) []byte {
		if n < 0 {
			return append(b, '*')
		}
		return strconv.AppendInt(b, n, 10)
	}
	b := make([]byte, 0, 16)
	b = utf8.AppendRune(b, d.Type)
	b = num(append(b, ' '), d.Major)
	b = num(append(b, ':'), d.Minor)
	return string(append(append(b, ' '), d.Access...))
}

// DefaultDevices returns Docker's default device rules for an unprivileged
// container: mknod of any char or block device (but no use of it), and
// read/write/mknod of null, zero, full, random, urandom, tty, console, ptmx
// and the pts devices. A fresh slice each call: append --device rules to it.
func DefaultDevices() []DeviceRule {
	r := func(t rune, maj, min int64, acc string) DeviceRule {
		return DeviceRule{Allow: true, Type: t, Major: maj, Minor: min, Access: acc}
	}
	return []DeviceRule{
		r('c', -1, -1, "m"),    // mknod any char device
		r('b', -1, -1, "m"),    // mknod any block device
		r('c', 1, 3, "rwm"),    // /dev/null
		r('c', 1, 5, "rwm"),    // /dev/zero
		r('c', 1, 7, "rwm"),    // /dev/full
		r('c', 1, 8, "rwm"),    // /dev/random
		r('c', 1, 9, "rwm"),    // /dev/urandom
		r('c', 5, 0, "rwm"),    // /dev/tty
		r('c', 5, 1, "rwm"),    // /dev/console
		r('c', 5, 2, "rwm"),    // /dev/ptmx
		r('c', 136, -1, "rwm"), // /dev/pts/*
	}
}

// AllowAllDevices returns the rule set of a privileged container.
func AllowAllDevices() []DeviceRule {
	return []DeviceRule{{Allow: true, Type: 'a', Major: -1, Minor: -1, Access: "rwm"}}
}

// Docker's limits.
const (
	minMemory      = 6 << 20 // 6 MB
	minCPUShares   = 2
	maxCPUShares   = 262144
	defCPUShares   = 1024
	defCPUPeriod   = 100000
	minCPUPeriod   = 1000
	maxCPUPeriod   = 1000000
	minCPUQuota    = 1000
	minBlkioWeight = 10
	maxBlkioWeight = 1000
	maxSwappiness  = 100
)

func invalid(flag, format string, args ...any) error {
	return fmt.Errorf("cgroup: %s: %s: %w", flag, fmt.Sprintf(format, args...), errdefs.ErrInvalid)
}

// Validate checks r with Docker's rules and messages. Each error wraps
// errdefs.ErrInvalid and names the flag and the accepted range.
func (r *Resources) Validate() error {
	var errs []error
	add := func(err error) { errs = append(errs, err) }
	if r.Memory < 0 {
		add(invalid("--memory", "%d is negative", r.Memory))
	} else if r.Memory > 0 && r.Memory < minMemory {
		add(invalid("--memory", "minimum memory limit allowed is 6MB, got %d", r.Memory))
	}
	if r.MemoryReservation < 0 {
		add(invalid("--memory-reservation", "%d is negative", r.MemoryReservation))
	} else if r.MemoryReservation > 0 && r.MemoryReservation < minMemory {
		add(invalid("--memory-reservation", "minimum memory reservation allowed is 6MB, got %d", r.MemoryReservation))
	}
	if r.Memory > 0 && r.MemoryReservation > r.Memory {
		add(invalid("--memory-reservation", "memory limit (%d) can not be less than memory reservation limit (%d)", r.Memory, r.MemoryReservation))
	}
	switch {
	case r.MemorySwap < -1:
		add(invalid("--memory-swap", "%d is out of range: -1 (unlimited), 0 (twice --memory) or at least --memory", r.MemorySwap))
	case r.MemorySwap > 0 && r.Memory == 0:
		add(invalid("--memory-swap", "you should always set the memory limit (--memory) when using a memoryswap limit"))
	case r.MemorySwap > 0 && r.MemorySwap < r.Memory:
		add(invalid("--memory-swap", "minimum memoryswap limit should be larger than memory limit (%d), got %d", r.Memory, r.MemorySwap))
	}
	if r.CPUShares < 0 {
		add(invalid("--cpu-shares", "%d is negative; shares are clamped to %d..%d", r.CPUShares, minCPUShares, maxCPUShares))
	}
	if r.CPUPeriod != 0 && (r.CPUPeriod < minCPUPeriod || r.CPUPeriod > maxCPUPeriod) {
		add(invalid("--cpu-period", "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000), got %d", r.CPUPeriod))
	}
	if r.CPUQuota < -1 || (r.CPUQuota > 0 && r.CPUQuota < minCPUQuota) {
		add(invalid("--cpu-quota", "CPU cfs quota can not be less than 1ms (i.e. 1000), got %d", r.CPUQuota))
	}
	if r.NanoCPUs != 0 {
		ncpu := int64(runtime.NumCPU())
		if r.CPUPeriod != 0 {
			add(invalid("--cpus", "conflicting options: Nano CPUs and CPU Period cannot both be set"))
		}
		if r.CPUQuota > 0 {
			add(invalid("--cpus", "conflicting options: Nano CPUs and CPU Quota cannot both be set"))
		}
		if r.NanoCPUs < 0 || r.NanoCPUs > ncpu*1e9 {
			add(invalid("--cpus", "range of CPUs is from 0.01 to %d.00, as there are only %d CPUs available", ncpu, ncpu))
		} else if r.NanoCPUs*defCPUPeriod/1e9 < minCPUQuota {
			add(invalid("--cpus", "range of CPUs is from 0.01 to %d.00, as there are only %d CPUs available", ncpu, ncpu))
		}
	}
	if err := validList(r.CpusetCpus); err != nil {
		add(invalid("--cpuset-cpus", "invalid value %q for cpuset cpus: %v", r.CpusetCpus, err))
	}
	if err := validList(r.CpusetMems); err != nil {
		add(invalid("--cpuset-mems", "invalid value %q for cpuset mems: %v", r.CpusetMems, err))
	}
	if r.PidsLimit < -1 {
		add(invalid("--pids-limit", "%d is out of range: -1 or 0 (unlimited), or a positive number", r.PidsLimit))
	}
	if r.MemorySwappiness != nil && *r.MemorySwappiness != -1 && (*r.MemorySwappiness < 0 || *r.MemorySwappiness > maxSwappiness) {
		add(invalid("--memory-swappiness", "invalid value: %d, valid memory swappiness range is 0-100", *r.MemorySwappiness))
	}
	if r.BlkioWeight != 0 && (r.BlkioWeight < minBlkioWeight || r.BlkioWeight > maxBlkioWeight) {
		add(invalid("--blkio-weight", "range of blkio weight is from 10 to 1000, got %d", r.BlkioWeight))
	}
	seenW := map[[2]int64]bool{}
	for _, d := range r.BlkioWeightDevice {
		if d.Major < 0 || d.Minor < 0 {
			add(invalid("--blkio-weight-device", "device %d:%d: major and minor must be >= 0", d.Major, d.Minor))
		}
		if d.Weight != 0 && (d.Weight < minBlkioWeight || d.Weight > maxBlkioWeight) {
			add(invalid("--blkio-weight-device", "device %d:%d: range of blkio weight is from 10 to 1000, got %d", d.Major, d.Minor, d.Weight))
		}
		if seenW[[2]int64{d.Major, d.Minor}] {
			add(invalid("--blkio-weight-device", "device %d:%d given twice", d.Major, d.Minor))
		}
		seenW[[2]int64{d.Major, d.Minor}] = true
	}
	for _, t := range []struct {
		flag string
		l    []ThrottleDevice
	}{
		{"--device-read-bps", r.BlkioDeviceReadBps},
		{"--device-write-bps", r.BlkioDeviceWriteBps},
		{"--device-read-iops", r.BlkioDeviceReadIOps},
		{"--device-write-iops", r.BlkioDeviceWriteIOps},
	} {
		seen := map[[2]int64]bool{}
		for _, d := range t.l {
			if d.Major < 0 || d.Minor < 0 {
				add(invalid(t.flag, "device %d:%d: major and minor must be >= 0", d.Major, d.Minor))
			}
			if seen[[2]int64{d.Major, d.Minor}] {
				add(invalid(t.flag, "device %d:%d given twice", d.Major, d.Minor))
			}
			seen[[2]int64{d.Major, d.Minor}] = true
		}
	}
	for _, h := range r.Hugetlb {
		if !validPageSize(h.PageSize) {
			add(invalid("hugetlb", "page size %q: want a number and KB, MB or GB, like 2MB", h.PageSize))
		}
	}
	for _, d := range r.Devices {
		if d.Type != 'a' && d.Type != 'b' && d.Type != 'c' {
			add(invalid("--device-cgroup-rule", "%q: type must be a, b or c", d.String()))
		}
		if d.Access == "" || strings.Trim(d.Access, "rwm") != "" {
			add(invalid("--device-cgroup-rule", "%q: access must be a combination of r, w and m", d.String()))
		}
		if d.Major < -1 || d.Minor < -1 {
			add(invalid("--device-cgroup-rule", "%q: major and minor must be >= 0, or -1 for any", d.String()))
		}
	}
	return errors.Join(errs...)
}

// validList checks a cpuset list such as "0-3,5".
func validList(s string) error {
	if s == "" {
		return nil
	}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.ParseUint(lo, 10, 16)
		if err != nil {
			return fmt.Errorf("%q is not a number", lo)
		}
		if isRange {
			b, err := strconv.ParseUint(hi, 10, 16)
			if err != nil {
				return fmt.Errorf("%q is not a number", hi)
			}
			if b < a {
				return fmt.Errorf("range %s is reversed", part)
			}
		}
	}
	return nil
}

func validPageSize(s string) bool {
	for _, u := range []string{"KB", "MB", "GB"} {
		if n, ok := strings.CutSuffix(s, u); ok {
			_, err := strconv.ParseUint(n, 10, 32)
			return err == nil && n != ""
		}
	}
	return false
}

// shares returns the cpu shares after Docker's clamping; 0 stays 0.
func (r *Resources) shares() int64 {
	switch {
	case r.CPUShares == 0:
		return 0
	case r.CPUShares < minCPUShares:
		return minCPUShares
	case r.CPUShares > maxCPUShares:
		return maxCPUShares
	}
	return r.CPUShares
}

// cfs returns the effective CFS quota (-1: none) and period (0: default).
func (r *Resources) cfs() (quota, period int64) {
	if r.NanoCPUs > 0 {
		return r.NanoCPUs * defCPUPeriod / 1e9, defCPUPeriod
	}
	quota = r.CPUQuota
	if quota <= 0 {
		quota = -1
	}
	return quota, r.CPUPeriod
}

// memsw returns the effective memory+swap limit: -1 unlimited, 0 not set.
func (r *Resources) memsw() int64 {
	switch {
	case r.Memory <= 0:
		if r.MemorySwap == -1 {
			return -1
		}
		return 0
	case r.MemorySwap == 0:
		return 2 * r.Memory
	}
	return r.MemorySwap
}

// swappiness returns the swappiness to set, -1 for the parent's.
func (r *Resources) swappiness() int64 {
	if r.MemorySwappiness == nil {
		return -1
	}
	return *r.MemorySwappiness
}

// pids returns the pids limit, -1 for none.
func (r *Resources) pids() int64 {
	if r.PidsLimit <= 0 {
		return -1
	}
	return r.PidsLimit
}

// SharesToWeight converts v1 cpu shares (2..262144) to a v2 cpu.weight
// (1..10000) with the formula runc and Docker use.
func SharesToWeight(shares int64) int64 {
	if shares == 0 {
		return 100
	}
	return 1 + ((shares-2)*9999)/262142
}

// BlkioWeightToIOWeight converts a v1 blkio weight (10..1000) to a v2
// io.weight (1..10000) as runc does.
func BlkioWeightToIOWeight(w uint16) int64 {
	if w == 0 {
		return 100
	}
	return 1 + (int64(w)-10)*9999/990
}
