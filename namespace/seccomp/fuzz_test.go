package seccomp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"
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
			tg := targets()[arch]
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

// FuzzCompile builds profiles from raw bytes, which reaches deep rule
// combinations (many rules per call, every operator, far jumps) faster
// than mutating JSON. The program must agree with the reference model.
// Seeds: testdata/fuzz/FuzzCompile.
func FuzzCompile(f *testing.F) {
	names := make([]string, 0, len(sysAMD64()))
	for n := range sysAMD64() {
		names = append(names, n)
	}
	slices.Sort(names)
	ops := []Operator{OpEqualTo, OpNotEqual, OpLessThan, OpLessEqual, OpGreaterThan, OpGreaterEqual, OpMaskedEqual}
	actions := []Action{ActAllow, ActErrno, ActKillProcess, ActKill, ActTrap, ActTrace, ActLog}
	f.Fuzz(func(t *testing.T, spec []byte, sel uint8, nr uint16, a0, a1 uint64) {
		r := bytes.NewReader(spec)
		byte1 := func() byte { b, _ := r.ReadByte(); return b }
		word := func() uint64 {
			var b [8]byte
			n := int(byte1() % 9)
			r.Read(b[:n])
			return binary.LittleEndian.Uint64(b[:])
		}
		p := &Profile{DefaultAction: actions[int(byte1())%len(actions)]}
		if byte1()%2 == 0 {
			p.ArchMap = []ArchMap{{ArchX86_64, []Arch{ArchX86, ArchX32}}, {ArchAARCH64, []Arch{ArchARM}}}
		}
		for r.Len() > 0 && len(p.Syscalls) < 400 {
			s := Syscall{Action: actions[int(byte1())%len(actions)]}
			for range 1 + int(byte1()%3) {
				s.Names = append(s.Names, names[int(byte1())*3%len(names)])
			}
			if s.Action == ActErrno || s.Action == ActTrace {
				s.ErrnoRet = new(uint(byte1()))
			}
			for range int(byte1() % 4) {
				s.Args = append(s.Args, Arg{Index: uint(byte1() % 6), Op: ops[int(byte1())%len(ops)], Value: word(), ValueTwo: word()})
			}
			switch byte1() % 4 {
			case 1:
				s.Includes = &Filter{Caps: []string{"CAP_SYS_ADMIN"}}
			case 2:
				s.Excludes = &Filter{Arches: []string{"arm64"}}
			}
			p.Syscalls = append(p.Syscalls, s)
		}
		caps := []string(nil)
		if sel&1 != 0 {
			caps = []string{"CAP_SYS_ADMIN"}
		}
		for _, arch := range []string{"amd64", "arm64"} {
			prog, err := Compile(p, arch, caps)
			if err != nil {
				if !errors.Is(err, errdefs.ErrInvalid) {
					t.Fatalf("Compile %s: %v", arch, err)
				}
				continue
			}
			vm, err := newVM(prog)
			if err != nil {
				t.Fatalf("%s: invalid program: %v", arch, err)
			}
			model := newRef(t, p, arch, caps)
			tg := targets()[arch]
			abis := append([]abi{tg.native}, tg.subs...)
			a := abis[int(sel>>1)%len(abis)]
			for _, d := range []data{
				{nr: uint32(nr), arch: a.audit, args: [6]uint64{a0, a1, a0, a1, a0, a1}},
				{nr: uint32(nr) % 460, arch: tg.native.audit, args: [6]uint64{a1, a0, a1, a0, a1, a0}},
				{nr: uint32(nr) | x32BitNr, arch: tg.native.audit, args: [6]uint64{a0, a0, a0, a1, a1, a1}},
			} {
				got := runVM(t, vm, d)
				if want := model.decide(d); got != want {
					t.Fatalf("%s %+v: got %#x, want %#x", arch, d, got, want)
				}
				if r, _ := interpret(prog, d); r != got {
					t.Fatalf("%s %+v: interpreter says %#x, VM %#x", arch, d, r, got)
				}
			}
		}
	})
}
