package seccomp

import (
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/bpf"

	"github.com/berthrt/berth/errdefs"
)

// dockerCaps is Docker's default capability set.
var dockerCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

var adminCaps = append([]string{"SYS_ADMIN"}, dockerCaps...)

const (
	allow  = retAllow
	eperm  = retErrno | 1
	enosys = retErrno | 38
)

const (
	cloneNewUser = 0x10000000
	cloneNewNS   = 0x00020000
	threadFlags  = 0x003d0f00 // what Go and glibc pass to create a thread
)

func nr(t testing.TB, table map[string]uint32, name string) uint32 {
	t.Helper()
	n, ok := table[name]
	if !ok {
		t.Fatalf("no syscall %q", name)
	}
	return n
}

func TestDefaultProfileDecisions(t *testing.T) {
	type tc struct {
		name string
		caps []string
		d    data
		want uint32
	}
	a64 := func(n string, args ...uint64) data {
		d := data{nr: nr(t, sysAMD64(), n), arch: auditArchX86_64}
		copy(d.args[:], args)
		return d
	}
	i386 := func(n string, args ...uint64) data {
		d := data{nr: nr(t, sys386(), n), arch: auditArchI386}
		copy(d.args[:], args)
		return d
	}
	x32 := func(n string, args ...uint64) data {
		n32, ok := x32Lookup(n)
		if !ok {
			t.Fatalf("no x32 syscall %q", n)
		}
		d := data{nr: n32, arch: auditArchX86_64}
		copy(d.args[:], args)
		return d
	}
	arm64 := func(n string, args ...uint64) data {
		d := data{nr: nr(t, sysARM64(), n), arch: auditArchAARCH64}
		copy(d.args[:], args)
		return d
	}
	arm := func(n string, args ...uint64) data {
		n2, ok := abiARM.nr(n)
		if !ok {
			t.Fatalf("no arm syscall %q", n)
		}
		d := data{nr: n2, arch: auditArchARM}
		copy(d.args[:], args)
		return d
	}
	cases := map[string][]tc{
		"amd64": {
			{"read", dockerCaps, a64("read"), allow},
			{"write", dockerCaps, a64("write", 1, 0, 10), allow},
			{"getpid", dockerCaps, a64("getpid"), allow},
			{"arch_prctl", dockerCaps, a64("arch_prctl"), allow},
			{"mount", dockerCaps, a64("mount"), eperm},
			{"mount with SYS_ADMIN", adminCaps, a64("mount"), allow},
			{"keyctl", dockerCaps, a64("keyctl"), eperm},
			{"keyctl with SYS_ADMIN", adminCaps, a64("keyctl"), eperm},
			{"add_key", dockerCaps, a64("add_key"), eperm},
			{"kexec_load", adminCaps, a64("kexec_load"), eperm},
			{"init_module", dockerCaps, a64("init_module"), eperm},
			{"init_module with SYS_MODULE", []string{"CAP_SYS_MODULE"}, a64("init_module"), allow},
			{"unshare", dockerCaps, a64("unshare", cloneNewUser), eperm},
			{"unshare with SYS_ADMIN", adminCaps, a64("unshare", cloneNewUser), allow},
			{"setns", dockerCaps, a64("setns"), eperm},
			{"clone thread", dockerCaps, a64("clone", threadFlags), allow},
			{"clone fork", dockerCaps, a64("clone", 17), allow},
			{"clone NEWUSER", dockerCaps, a64("clone", cloneNewUser|17), eperm},
			{"clone NEWNS", dockerCaps, a64("clone", cloneNewNS), eperm},
			{"clone NEWUSER with SYS_ADMIN", adminCaps, a64("clone", cloneNewUser|17), allow},
			{"clone3", dockerCaps, a64("clone3"), enosys},
			{"clone3 with SYS_ADMIN", adminCaps, a64("clone3"), allow},
			{"personality linux", dockerCaps, a64("personality", 0), allow},
			{"personality linux32", dockerCaps, a64("personality", 8), allow},
			{"personality uname26", dockerCaps, a64("personality", 0x20000), allow},
			{"personality query", dockerCaps, a64("personality", 0xffffffff), allow},
			{"personality addr_no_randomize", dockerCaps, a64("personality", 0x0040000), eperm},
			{"personality high word", dockerCaps, a64("personality", 1<<32), eperm},
			{"personality query high word", dockerCaps, a64("personality", 0x1_ffffffff), eperm},
			{"socket inet", dockerCaps, a64("socket", 2, 1, 0), allow},
			{"socket alg", dockerCaps, a64("socket", 38), eperm},
			{"socket nfc", dockerCaps, a64("socket", 39), allow},
			{"socket vsock", dockerCaps, a64("socket", 40), eperm},
			{"socket 41", dockerCaps, a64("socket", 41), allow},
			{"socket alg high word", dockerCaps, a64("socket", 1<<32|38), allow},
			{"ptrace", dockerCaps, a64("ptrace"), allow}, // kernel >= 4.8
			{"open_by_handle_at", dockerCaps, a64("open_by_handle_at"), eperm},
			{"open_by_handle_at with DAC_READ_SEARCH", []string{"dac_read_search"}, a64("open_by_handle_at"), allow},
			{"chroot", dockerCaps, a64("chroot"), allow},
			{"chroot without SYS_CHROOT", nil, a64("chroot"), eperm},
			{"reboot", dockerCaps, a64("reboot"), eperm},
			{"bpf", dockerCaps, a64("bpf"), eperm},
			{"bpf with CAP_BPF", []string{"CAP_BPF"}, a64("bpf"), allow},
			{"number past the table", dockerCaps, data{nr: 1000, arch: auditArchX86_64}, eperm},
			{"number -1", dockerCaps, data{nr: 0xffffffff, arch: auditArchX86_64}, eperm},
			{"unknown arch", dockerCaps, data{nr: 0, arch: 0xdeadbeef}, eperm},
			{"arm64 arch on amd64", dockerCaps, data{nr: 63, arch: auditArchAARCH64}, eperm},
			{"i386 read", dockerCaps, i386("read"), allow},
			{"i386 mount", dockerCaps, i386("mount"), eperm},
			{"i386 modify_ldt", dockerCaps, i386("modify_ldt"), allow},
			{"i386 socketcall", dockerCaps, i386("socketcall"), allow},
			{"i386 clone NEWUSER", dockerCaps, i386("clone", cloneNewUser), eperm},
			{"i386 clone fork", dockerCaps, i386("clone", 17), allow},
			{"i386 personality query", dockerCaps, i386("personality", 0xffffffff), allow},
			{"i386 keyctl", dockerCaps, i386("keyctl"), eperm},
			{"x32 read", dockerCaps, x32("read"), allow},
			{"x32 execve", dockerCaps, x32("execve"), allow},
			{"x32 mount", dockerCaps, x32("mount"), eperm},
			{"x32 unshare", dockerCaps, x32("unshare"), eperm},
		},
		"arm64": {
			{"read", dockerCaps, arm64("read"), allow},
			{"openat", dockerCaps, arm64("openat"), allow},
			{"mount", dockerCaps, arm64("mount"), eperm},
			{"keyctl", dockerCaps, arm64("keyctl"), eperm},
			{"clone NEWUSER", dockerCaps, arm64("clone", cloneNewUser|17), eperm},
			{"clone NEWUSER with SYS_ADMIN", adminCaps, arm64("clone", cloneNewUser|17), allow},
			{"clone fork", dockerCaps, arm64("clone", 17), allow},
			{"clone3", dockerCaps, arm64("clone3"), enosys},
			{"personality query", dockerCaps, arm64("personality", 0xffffffff), allow},
			{"personality bad", dockerCaps, arm64("personality", 0x0400000), eperm},
			{"amd64 arch on arm64", dockerCaps, data{nr: 0, arch: auditArchX86_64}, eperm},
			{"arm read", dockerCaps, arm("read"), allow},
			{"arm breakpoint", dockerCaps, arm("breakpoint"), allow},
			{"arm set_tls", dockerCaps, arm("set_tls"), allow},
			{"arm mount", dockerCaps, arm("mount"), eperm},
			{"arm arm_fadvise64_64", dockerCaps, arm("arm_fadvise64_64"), allow},
		},
	}
	for arch, cs := range cases {
		for _, c := range cs {
			prog, err := Compile(DefaultProfile(), arch, c.caps)
			if err != nil {
				t.Fatalf("%s: %v", arch, err)
			}
			vm, err := newVM(prog)
			if err != nil {
				t.Fatalf("%s: %v", arch, err)
			}
			if got := runVM(t, vm, c.d); got != c.want {
				t.Errorf("%s %s: got %#x, want %#x", arch, c.name, got, c.want)
			}
			if got := ref(t, DefaultProfile(), arch, c.caps, c.d); got != c.want {
				t.Errorf("%s %s: reference model says %#x, want %#x", arch, c.name, got, c.want)
			}
		}
	}
}

// TestAgainstReference runs every system call number of every covered ABI,
// and random arguments, through the compiled default profile and the
// reference model.
func TestAgainstReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	interesting := []uint64{0, 1, 8, 17, 38, 39, 40, 41, 0x20000, 0xffffffff, 1 << 32, cloneNewUser, threadFlags, ^uint64(0)}
	arg := func() uint64 {
		if rng.IntN(2) == 0 {
			return interesting[rng.IntN(len(interesting))]
		}
		return rng.Uint64() >> rng.IntN(64)
	}
	for _, arch := range []string{"amd64", "arm64", "386", "arm"} {
		for _, caps := range [][]string{nil, dockerCaps, adminCaps} {
			p := DefaultProfile()
			prog, err := Compile(p, arch, caps)
			if err != nil {
				t.Fatal(err)
			}
			vm, err := newVM(prog)
			if err != nil {
				t.Fatal(err)
			}
			model := newRef(t, p, arch, caps)
			tg := targets()[arch]
			for _, a := range append([]abi{tg.native}, tg.subs...) {
				var nrs []uint32
				for n := uint32(0); n < 600; n++ {
					nrs = append(nrs, n, n|x32BitNr)
				}
				nrs = append(nrs, 0x0f0000, 0x0f0001, 0x0f0005, 0x0f0007, 0xffffffff, 0x7fffffff)
				for _, n := range nrs {
					for range 3 {
						d := data{nr: n, arch: a.audit}
						for i := range d.args {
							d.args[i] = arg()
						}
						got := runVM(t, vm, d)
						if want := model.decide(d); got != want {
							t.Fatalf("%s caps %v: %+v: got %#x, want %#x", arch, caps, d, got, want)
						}
						if r, _ := interpret(prog, d); r != got {
							t.Fatalf("%s %+v: interpreter says %#x, VM %#x", arch, d, r, got)
						}
					}
				}
			}
		}
	}
}

// TestArgOps checks every operator against boundary values on 64-bit and
// 32-bit ABIs.
func TestArgOps(t *testing.T) {
	values := []uint64{0, 1, 0x7fffffff, 0x80000000, 0xffffffff, 1 << 32, 1<<32 | 5, 0xdeadbeef_00000007, ^uint64(0)}
	ops := []Operator{OpEqualTo, OpNotEqual, OpLessThan, OpLessEqual, OpGreaterThan, OpGreaterEqual, OpMaskedEqual}
	for _, arch := range []string{"amd64", "386"} {
		for _, op := range ops {
			for _, v := range values {
				for _, v2 := range []uint64{0, 5, 1<<32 | 5} {
					p := &Profile{
						DefaultAction: ActErrno,
						Syscalls: []Syscall{{
							Names: []string{"read"}, Action: ActAllow,
							Args: []Arg{{Index: 2, Value: v, ValueTwo: v2, Op: op}},
						}},
					}
					prog, err := Compile(p, arch, nil)
					if err != nil {
						t.Fatal(err)
					}
					vm, err := newVM(prog)
					if err != nil {
						t.Fatal(err)
					}
					tg := targets()[arch]
					n, _ := tg.native.nr("read")
					for _, x := range values {
						for _, dx := range []uint64{0, 1, ^uint64(0)} {
							d := data{nr: n, arch: tg.native.audit}
							d.args[2] = x + dx
							if got, want := runVM(t, vm, d), ref(t, p, arch, nil, d); got != want {
								t.Fatalf("%s %s value %#x valueTwo %#x arg %#x: got %#x, want %#x", arch, op, v, v2, d.args[2], got, want)
							}
						}
					}
				}
			}
		}
	}
}

// TestFarJumps compiles a profile whose rules alone are longer than a
// classic BPF jump reaches.
func TestFarJumps(t *testing.T) {
	p := &Profile{DefaultAction: ActKillProcess, Syscalls: []Syscall{}}
	var names []string
	for n := range sysAMD64() {
		names = append(names, n)
	}
	for i, n := range names {
		if i%3 == 0 {
			continue // leave gaps
		}
		var args []Arg
		for j := range i % 4 {
			args = append(args, Arg{Index: uint(j), Value: uint64(i * j), Op: OpGreaterEqual})
		}
		p.Syscalls = append(p.Syscalls, Syscall{Names: []string{n}, Action: ActErrno, ErrnoRet: new(uint(i % 4096)), Args: args})
	}
	prog, err := Compile(p, "amd64", nil)
	if err != nil {
		t.Fatal(err)
	}
	vm, err := newVM(prog)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d rules, %d instructions", len(p.Syscalls), len(prog))
	model := newRef(t, p, "amd64", nil)
	rng := rand.New(rand.NewPCG(3, 4))
	for n := uint32(0); n < 520; n++ {
		for range 4 {
			d := data{nr: n, arch: auditArchX86_64}
			for i := range d.args {
				d.args[i] = rng.Uint64N(3000)
			}
			if got, want := runVM(t, vm, d), model.decide(d); got != want {
				t.Fatalf("%+v: got %#x, want %#x", d, got, want)
			}
		}
	}
}

func TestRuleOrder(t *testing.T) {
	p := &Profile{
		DefaultAction: ActAllow,
		Syscalls: []Syscall{
			{Names: []string{"write"}, Action: ActErrno, ErrnoRet: new(uint(5))},
			{Names: []string{"write"}, Action: ActAllow, Args: []Arg{{Index: 0, Value: 1, Op: OpEqualTo}}},
			{Names: []string{"write"}, Action: ActKillProcess},
			// Two conditions on one index: either may hold (runc).
			{Names: []string{"read"}, Action: ActErrno, Args: []Arg{{Index: 0, Value: 3, Op: OpEqualTo}, {Index: 0, Value: 4, Op: OpEqualTo}}},
			// Conditions on different indexes: all must hold.
			{Names: []string{"close"}, Action: ActErrno, Args: []Arg{{Index: 0, Value: 3, Op: OpEqualTo}, {Index: 1, Value: 4, Op: OpEqualTo}}},
		},
	}
	prog, err := Compile(p, "amd64", nil)
	if err != nil {
		t.Fatal(err)
	}
	vm, err := newVM(prog)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		a0   uint64
		a1   uint64
		want uint32
	}{
		{"write", 1, 0, allow},
		{"write", 2, 0, retErrno | 5},
		{"read", 3, 0, eperm},
		{"read", 4, 0, eperm},
		{"read", 5, 0, allow},
		{"close", 3, 4, eperm},
		{"close", 3, 5, allow},
		{"close", 2, 4, allow},
		{"getpid", 0, 0, allow},
	} {
		d := data{nr: nr(t, sysAMD64(), c.name), arch: auditArchX86_64, args: [6]uint64{c.a0, c.a1}}
		if got := runVM(t, vm, d); got != c.want {
			t.Errorf("%s(%d, %d): got %#x, want %#x", c.name, c.a0, c.a1, got, c.want)
		}
	}
	// An allow-all profile still refuses other ABIs.
	if got := runVM(t, vm, data{nr: 3, arch: auditArchI386}); got != eperm {
		t.Errorf("i386 call under a profile without archMap: got %#x, want EPERM", got)
	}
	if got := runVM(t, vm, data{nr: 0 | x32BitNr, arch: auditArchX86_64}); got != eperm {
		t.Errorf("x32 call under a profile without archMap: got %#x, want EPERM", got)
	}
}

func TestActions(t *testing.T) {
	for _, c := range []struct {
		a     Action
		errno *uint
		want  uint32
	}{
		{ActAllow, nil, retAllow},
		{ActErrno, nil, retErrno | 1},
		{ActErrno, new(uint(0)), retErrno},
		{ActErrno, new(uint(4095)), retErrno | 4095},
		{ActTrace, new(uint(7)), retTrace | 7},
		{ActKill, nil, retKillThread},
		{ActKillThread, nil, retKillThread},
		{ActKillProcess, nil, retKillProcess},
		{ActTrap, nil, retTrap},
		{ActLog, nil, retLog},
	} {
		p := &Profile{DefaultAction: ActAllow, Syscalls: []Syscall{{Names: []string{"uname"}, Action: c.a, ErrnoRet: c.errno}}}
		prog, err := Compile(p, "arm64", nil)
		if err != nil {
			t.Fatal(err)
		}
		vm, err := newVM(prog)
		if err != nil {
			t.Fatal(err)
		}
		if got := runVM(t, vm, data{nr: nr(t, sysARM64(), "uname"), arch: auditArchAARCH64}); got != c.want {
			t.Errorf("%s: got %#x, want %#x", c.a, got, c.want)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	notify := &Profile{DefaultAction: ActErrno, Syscalls: []Syscall{{Names: []string{"read"}, Action: ActNotify}}}
	if _, err := Compile(notify, "amd64", nil); !errors.Is(err, errdefs.ErrUnsupported) {
		t.Errorf("notify: %v, want ErrUnsupported", err)
	}
	if _, err := Compile(DefaultProfile(), "s390x", nil); !errors.Is(err, errdefs.ErrUnsupported) {
		t.Errorf("s390x: %v, want ErrUnsupported", err)
	}
	if _, err := Compile(&Profile{}, "amd64", nil); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("empty profile: %v, want ErrInvalid", err)
	}
	if _, err := Compile(nil, "amd64", nil); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("nil profile: %v, want ErrInvalid", err)
	}
	// Too long for the kernel: every syscall with many conditions.
	big := &Profile{DefaultAction: ActErrno}
	for n := range sysAMD64() {
		var args []Arg
		for i := range 6 {
			args = append(args, Arg{Index: uint(i), Value: 1 << 40, Op: OpLessEqual})
		}
		big.Syscalls = append(big.Syscalls, Syscall{Names: []string{n}, Action: ActAllow, Args: args})
	}
	if _, err := Compile(big, "amd64", nil); !errors.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), "4096") {
		t.Errorf("huge profile: %v, want ErrInvalid about the 4096 limit", err)
	}
}

// TestDefaultSize keeps an eye on the program length and the work per call.
func TestDefaultSize(t *testing.T) {
	for _, arch := range []string{"amd64", "arm64"} {
		prog, err := Compile(DefaultProfile(), arch, dockerCaps)
		if err != nil {
			t.Fatal(err)
		}
		longest := longestPath(prog)
		n := targets()[arch].native
		nrRead, _ := n.nr("read")
		nrFutex, _ := n.nr("futex")
		_, stepsRead := interpret(prog, data{nr: nrRead, arch: n.audit})
		_, stepsFutex := interpret(prog, data{nr: nrFutex, arch: n.audit})
		t.Logf("%s: %d instructions, at most %d run per call; %d for read, %d for futex",
			arch, len(prog), longest, stepsRead, stepsFutex)
		if len(prog) > 1500 {
			t.Errorf("%s: %d instructions", arch, len(prog))
		}
		// arch check, number load, binary search, argument checks of
		// the longest rule chain (personality: five rules).
		if longest > 60 {
			t.Errorf("%s: %d instructions on the longest path", arch, longest)
		}
	}
}

func TestCompileDeterministic(t *testing.T) {
	a, err := Compile(DefaultProfile(), "amd64", adminCaps)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		b, err := Compile(DefaultProfile(), "amd64", adminCaps)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(a, b) {
			t.Fatal("two compilations differ")
		}
	}
}

func BenchmarkCompileDefault(b *testing.B) {
	p := DefaultProfile()
	for b.Loop() {
		if _, err := Compile(p, "amd64", dockerCaps); err != nil {
			b.Fatal(err)
		}
	}
}

// longestPath is the most instructions any system call makes the program
// run (jumps only go forward, so a backward pass finds it).
func longestPath(prog []bpf.RawInstruction) int {
	steps := make([]int, len(prog)+1)
	for i := len(prog) - 1; i >= 0; i-- {
		in := prog[i]
		switch in.Op {
		case opRetK:
			steps[i] = 1
		case opJa:
			steps[i] = 1 + steps[i+1+int(in.K)]
		case opJeqK, opJgtK, opJgeK:
			steps[i] = 1 + max(steps[i+1+int(in.Jt)], steps[i+1+int(in.Jf)])
		default:
			steps[i] = 1 + steps[i+1]
		}
	}
	return steps[0]
}

// interpret runs prog on d as the kernel would on a little-endian machine
// and counts the instructions run.
func interpret(prog []bpf.RawInstruction, d data) (ret uint32, steps int) {
	words := func(off uint32) uint32 {
		switch {
		case off == 0:
			return d.nr
		case off == 4:
			return d.arch
		case off >= 16 && off < 64:
			a := d.args[(off-16)/8]
			if off%8 == 0 {
				return uint32(a)
			}
			return uint32(a >> 32)
		}
		return 0
	}
	var a uint32
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		steps++
		switch in.Op {
		case opLdAbsW:
			a = words(in.K)
		case opAndK:
			a &= in.K
		case opJa:
			pc += int(in.K)
		case opJeqK, opJgtK, opJgeK:
			cond := a == in.K
			if in.Op == opJgtK {
				cond = a > in.K
			} else if in.Op == opJgeK {
				cond = a >= in.K
			}
			if cond {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		case opRetK:
			return in.K, steps
		}
	}
	return 0, steps
}
