package seccomp

import (
	"encoding/binary"
	"fmt"
	"slices"
	"testing"

	"golang.org/x/net/bpf"
)

// data is a struct seccomp_data.
type data struct {
	nr   uint32
	arch uint32
	args [6]uint64
}

// bytes lays d out for golang.org/x/net/bpf's VM. The kernel loads 32-bit
// words in the host's order; the VM loads them big-endian. Writing each
// word big-endian at the offset the kernel reads it from makes the VM see
// what the kernel sees on a little-endian machine (low word of an argument
// first).
func (d data) bytes() []byte {
	b := make([]byte, 64)
	binary.BigEndian.PutUint32(b[0:], d.nr)
	binary.BigEndian.PutUint32(b[4:], d.arch)
	for i, a := range d.args {
		binary.BigEndian.PutUint32(b[16+8*i:], uint32(a))
		binary.BigEndian.PutUint32(b[20+8*i:], uint32(a>>32))
	}
	return b
}

// newVM checks prog the way the kernel would (length, bounded forward
// jumps, ends in a return, only instructions seccomp accepts) and loads it
// in the VM.
func newVM(prog []bpf.RawInstruction) (*bpf.VM, error) {
	if len(prog) == 0 || len(prog) > maxInsns {
		return nil, fmt.Errorf("length %d", len(prog))
	}
	ins := make([]bpf.Instruction, len(prog))
	for i, r := range prog {
		switch r.Op {
		case opLdAbsW:
			if r.K%4 != 0 || r.K >= 64 {
				return nil, fmt.Errorf("insn %d: load at %d", i, r.K)
			}
		case opAndK, opJa, opJeqK, opJgtK, opJgeK, opRetK:
		default:
			return nil, fmt.Errorf("insn %d: opcode %#x", i, r.Op)
		}
		ins[i] = r.Disassemble()
	}
	if prog[len(prog)-1].Op != opRetK && prog[len(prog)-1].Op != opJa {
		return nil, fmt.Errorf("does not end in ret")
	}
	return bpf.NewVM(ins)
}

func runVM(t testing.TB, vm *bpf.VM, d data) uint32 {
	t.Helper()
	r, err := vm.Run(d.bytes())
	if err != nil {
		t.Fatalf("vm: %v", err)
	}
	return uint32(r)
}

// ref decides d for profile p the slow, obvious way; the compiled program
// must agree with it.
func ref(t testing.TB, p *Profile, arch string, caps []string, d data) uint32 {
	t.Helper()
	return newRef(t, p, arch, caps).decide(d)
}

// refModel is a profile resolved for one architecture and capability set.
type refModel struct {
	rules []rule
	abis  []abi
	def   uint32
	bad   uint32
	// nrs[i][j] are the numbers rules[j] names in abis[i].
	nrs [][][]uint32
}

func newRef(t testing.TB, p *Profile, arch string, caps []string) *refModel {
	t.Helper()
	tg := targets()[arch]
	kv, ok := hostKernel()
	rules, err := resolve(p, tg.native.filter, capSet(caps), kv, ok)
	if err != nil {
		t.Fatal(err)
	}
	m := &refModel{rules: rules, abis: coveredABIs(p, tg)}
	m.def, _ = retValue(p.DefaultAction, p.DefaultErrnoRet)
	m.bad = m.def
	if p.DefaultAction == ActAllow || p.DefaultAction == ActLog {
		m.bad = retErrno | 1
	}
	for _, a := range m.abis {
		per := make([][]uint32, len(rules))
		for j, r := range rules {
			for _, n := range r.names {
				if nr, ok := a.nr(n); ok {
					per[j] = append(per[j], nr)
				}
			}
		}
		m.nrs = append(m.nrs, per)
	}
	return m
}

func (m *refModel) decide(d data) uint32 {
	var mine []int
	x32 := false
	for i, a := range m.abis {
		if a.audit == d.arch {
			mine = append(mine, i)
			x32 = x32 || a.scmp == ArchX32
		}
	}
	if len(mine) == 0 {
		return m.bad
	}
	if d.arch == auditArchX86_64 && d.nr >= x32BitNr && !x32 {
		return m.bad
	}
	var match []rule
	for j, r := range m.rules {
		for _, i := range mine {
			if slices.Contains(m.nrs[i][j], d.nr) {
				match = append(match, r)
				break
			}
		}
	}
	bits32 := m.abis[mine[0]].bits32
	// Conditional rules first, in order; then the first unconditional.
	for _, r := range match {
		if len(r.conds) > 0 && holds(r.conds, d, bits32) {
			return r.ret
		}
	}
	for _, r := range match {
		if len(r.conds) == 0 {
			return r.ret
		}
	}
	return m.def
}

func holds(conds []Arg, d data, bits32 bool) bool {
	for _, c := range conds {
		v := d.args[c.Index]
		if bits32 {
			v = uint64(uint32(v))
		}
		var ok bool
		switch c.Op {
		case OpEqualTo:
			ok = v == c.Value
		case OpNotEqual:
			ok = v != c.Value
		case OpLessThan:
			ok = v < c.Value
		case OpLessEqual:
			ok = v <= c.Value
		case OpGreaterThan:
			ok = v > c.Value
		case OpGreaterEqual:
			ok = v >= c.Value
		case OpMaskedEqual:
			if bits32 {
				ok = uint32(v)&uint32(c.Value) == uint32(c.ValueTwo)
			} else {
				ok = v&c.Value == c.ValueTwo
			}
		}
		if !ok {
			return false
		}
	}
	return true
}
