package seccomp

import (
	"bytes"
	"errors"
	"testing"

	"github.com/berthrt/berth/errdefs"
)

// allCaps are the capability names the fuzzer picks the container's set
// from, one bit each.
var allCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
	"CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
	"CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
	"CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
	"CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
	"CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
	"CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
	"CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
	"CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
}

// FuzzLoadCompile feeds profile JSON through Load and Compile. Neither may
// panic; Load fails only with ErrInvalid, Compile only with ErrUnsupported
// or ErrInvalid; a compiled program must pass the checks the kernel makes
// and decide the fuzzed system call exactly as the reference model does.
// Seeds: testdata/fuzz/FuzzLoadCompile.
func FuzzLoadCompile(f *testing.F) {
	f.Fuzz(func(t *testing.T, profile []byte, capBits uint64, nr uint32, archSel uint8, a0, a1, a2 uint64) {
		p, err := Load(bytes.NewReader(profile))
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalid) {
				t.Fatalf("Load: %v is not ErrInvalid", err)
			}
			return
		}
		var caps []string
		for i, c := range allCaps {
			if capBits&(1<<i) != 0 {
				caps = append(caps, c)
			}
		}
		for _, arch := range []string{"amd64", "arm64"} {
			prog, err := Compile(p, arch, caps)
			if err != nil {
				if !errors.Is(err, errdefs.ErrUnsupported) && !errors.Is(err, errdefs.ErrInvalid) {
					t.Fatalf("Compile %s: %v", arch, err)
				}
				continue
			}
			vm, err := newVM(prog)
			if err != nil {
				t.Fatalf("%s: invalid program: %v", arch, err)
			}
			tg := targets[arch]
			abis := append([]abi{tg.native}, tg.subs...)
			audit := uint32(0xdeadbeef)
			if i := int(archSel) % (len(abis) + 1); i < len(abis) {
				audit = abis[i].audit
			}
			inputs := []data{
				{nr: nr, arch: audit, args: [6]uint64{a0, a1, a2, a0, a1, a2}},
				{nr: nr % 512, arch: tg.native.audit, args: [6]uint64{a0, a1, a2}},
				{nr: nr, arch: tg.native.audit, args: [6]uint64{a2, a1, a0}},
			}
			for _, d := range inputs {
				got := runVM(t, vm, d)
				if want := ref(t, p, arch, caps, d); got != want {
					t.Fatalf("%s %+v: got %#x, want %#x", arch, d, got, want)
				}
				if r, _ := interpret(prog, d); r != got {
					t.Fatalf("%s %+v: interpreter says %#x, VM %#x", arch, d, r, got)
				}
			}
		}
	})
}
