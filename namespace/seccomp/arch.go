package seccomp

import "sync"

// Audit architecture values (linux/audit.h) as they appear in
// seccomp_data.arch.
const (
	auditArchX86_64  = 0xc000003e
	auditArchI386    = 0x40000003
	auditArchAARCH64 = 0xc00000b7
	auditArchARM     = 0x40000028
)

// x32BitNr is __X32_SYSCALL_BIT: x32 system calls arrive with the x86-64
// audit architecture and this bit set in the number.
const x32BitNr = 0x40000000

// abi is one system call numbering the compiler emits rules for.
type abi struct {
	scmp   Arch   // its name in Architectures and ArchMap
	filter string // its name in Filter.Arches
	audit  uint32 // seccomp_data.arch of its calls
	bits32 bool   // arguments are 32-bit: compare the low words only
	// nr maps a name to its number (x32 numbers include x32BitNr).
	nr func(name string) (uint32, bool)
}

func tableLookup(table, extra func() map[string]uint32) func(string) (uint32, bool) {
	return func(name string) (uint32, bool) {
		if extra != nil {
			if n, ok := extra()[name]; ok {
				return n, true
			}
		}
		n, ok := table()[name]
		return n, ok
	}
}

var (
	abiAMD64 = abi{ArchX86_64, "amd64", auditArchX86_64, false, tableLookup(sysAMD64, nil)}
	abiX32   = abi{ArchX32, "x32", auditArchX86_64, false, x32Lookup}
	abi386   = abi{ArchX86, "x86", auditArchI386, true, tableLookup(sys386, nil)}
	abiARM64 = abi{ArchAARCH64, "arm64", auditArchAARCH64, false, tableLookup(sysARM64, nil)}
	abiARM   = abi{ArchARM, "arm", auditArchARM, true, tableLookup(sysARM, armExtra)}
)

// target is an architecture Compile accepts: its native ABI and the
// sub-ABIs a profile may add to it.
type target struct {
	native abi
	subs   []abi
}

// targets maps GOARCH names (and libseccomp's, where they differ) to what
// the compiler emits for them.
var targets = sync.OnceValue(func() map[string]target {
	return map[string]target{
		"amd64": {abiAMD64, []abi{abi386, abiX32}},
		"386":   {abi386, nil},
		"x86":   {abi386, nil},
		"arm64": {abiARM64, []abi{abiARM}},
		"arm":   {abiARM, nil},
	}
})

// armExtra are the ARM private system calls (__ARM_NR_BASE 0x0f0000 + n)
// and libseccomp's name for arm_sync_file_range; x/sys/unix lists neither.
var armExtra = sync.OnceValue(func() map[string]uint32 {
	return map[string]uint32{
		"breakpoint":       0x0f0001,
		"cacheflush":       0x0f0002,
		"usr26":            0x0f0003,
		"usr32":            0x0f0004,
		"set_tls":          0x0f0005,
		"get_tls":          0x0f0006,
		"sync_file_range2": 341,
	}
})

// x32Only are the x32 system calls numbered apart from their x86-64
// counterparts (arch/x86/entry/syscalls/syscall_64.tbl, 512-547), without
// x32BitNr.
var x32Only = sync.OnceValue(func() map[string]uint32 {
	return map[string]uint32{
		"rt_sigaction": 512, "rt_sigreturn": 513, "ioctl": 514, "readv": 515,
		"writev": 516, "recvfrom": 517, "sendmsg": 518, "recvmsg": 519,
		"execve": 520, "ptrace": 521, "rt_sigpending": 522, "rt_sigtimedwait": 523,
		"rt_sigqueueinfo": 524, "sigaltstack": 525, "timer_create": 526, "mq_notify": 527,
		"kexec_load": 528, "waitid": 529, "set_robust_list": 530, "get_robust_list": 531,
		"vmsplice": 532, "move_pages": 533, "preadv": 534, "pwritev": 535,
		"rt_tgsigqueueinfo": 536, "recvmmsg": 537, "sendmmsg": 538, "process_vm_readv": 539,
		"process_vm_writev": 540, "setsockopt": 541, "getsockopt": 542, "io_setup": 543,
		"io_submit": 544, "execveat": 545, "preadv2": 546, "pwritev2": 547,
	}
})

func x32Lookup(name string) (uint32, bool) {
	if n, ok := x32Only()[name]; ok {
		return n | x32BitNr, true
	}
	n, ok := sysAMD64()[name]
	if !ok || n >= 512 && n < 548 {
		return 0, false
	}
	return n | x32BitNr, true
}

// knownSyscall reports whether any architecture has a system call of that
// name.
func knownSyscall(name string) bool {
	for _, t := range []map[string]uint32{sysAMD64(), sysARM64(), sys386(), sysARM(), armExtra()} {
		if _, ok := t[name]; ok {
			return true
		}
	}
	for lo, hi := 0, len(otherNames); lo < hi; {
		m := int(uint(lo+hi) >> 1)
		switch {
		case otherNames[m] == name:
			return true
		case otherNames[m] < name:
			lo = m + 1
		default:
			hi = m
		}
	}
	return false
}
