package seccomp

import (
	"fmt"

	"golang.org/x/net/bpf"
)

// Classic BPF opcodes the compiler uses (linux/filter.h).
const (
	opLdAbsW = 0x20 // BPF_LD | BPF_W | BPF_ABS
	opAndK   = 0x54 // BPF_ALU | BPF_AND | BPF_K
	opJa     = 0x05 // BPF_JMP | BPF_JA
	opJeqK   = 0x15 // BPF_JMP | BPF_JEQ | BPF_K
	opJgtK   = 0x25 // BPF_JMP | BPF_JGT | BPF_K
	opJgeK   = 0x35 // BPF_JMP | BPF_JGE | BPF_K
	opRetK   = 0x06 // BPF_RET | BPF_K
)

// maxInsns is BPF_MAXINSNS, the kernel's limit on a filter's length.
const maxInsns = 4096

// label names a position in the program; next means the instruction that
// follows.
type label int32

const next label = -1

// ainsn is an instruction with symbolic jump targets, or a label.
type ainsn struct {
	op     uint16
	k      uint32
	jt, jf label // conditional jumps; the target of a JA is jt
	mark   label // >= 0: this entry is the position of that label
	farT   bool  // the true target needs a JA trampoline
	farF   bool
}

// assembler builds a program whose conditional jumps name labels, then
// lays it out. Classic BPF conditional jumps reach at most 255
// instructions ahead; a jump farther than that goes through a JA
// trampoline (32-bit offset) inserted right after it. Layout repeats until
// no jump needs a new trampoline; inserting only lengthens distances, so
// each jump gains at most two and the loop ends.
type assembler struct {
	ins     []ainsn
	nlabels int
}

func (a *assembler) newLabel() label {
	a.nlabels++
	return label(a.nlabels - 1)
}

func (a *assembler) bind(l label) { a.ins = append(a.ins, ainsn{mark: l}) }

func (a *assembler) stmt(op uint16, k uint32) {
	a.ins = append(a.ins, ainsn{op: op, k: k, mark: -1})
}

func (a *assembler) jump(op uint16, k uint32, jt, jf label) {
	a.ins = append(a.ins, ainsn{op: op, k: k, jt: jt, jf: jf, mark: -1})
}

func (a *assembler) ja(to label) {
	a.ins = append(a.ins, ainsn{op: opJa, jt: to, mark: -1})
}

func (a *assembler) ret(k uint32) { a.stmt(opRetK, k) }

func (a *assembler) ldw(off uint32) { a.stmt(opLdAbsW, off) }

func isCond(op uint16) bool { return op == opJeqK || op == opJgtK || op == opJgeK }

func (in *ainsn) size() int {
	switch {
	case in.mark >= 0:
		return 0
	case isCond(in.op):
		n := 1
		if in.farT {
			n++
		}
		if in.farF {
			n++
		}
		return n
	}
	return 1
}

// assemble resolves labels and returns the program.
func (a *assembler) assemble() ([]bpf.RawInstruction, error) {
	pos := make([]int, len(a.ins))
	lpos := make([]int, a.nlabels)
	var total int
	for {
		total = 0
		for i := range a.ins {
			pos[i] = total
			if a.ins[i].mark >= 0 {
				lpos[a.ins[i].mark] = total
			}
			total += a.ins[i].size()
		}
		if total > maxInsns {
			return nil, fmt.Errorf("filter has %d instructions, more than the kernel's %d", total, maxInsns)
		}
		changed := false
		for i := range a.ins {
			in := &a.ins[i]
			if in.mark >= 0 || !isCond(in.op) {
				continue
			}
			after := pos[i] + 1
			if !in.farT && in.jt != next && lpos[in.jt]-after > 255 {
				in.farT, changed = true, true
			}
			if !in.farF && in.jf != next && lpos[in.jf]-after > 255 {
				in.farF, changed = true, true
			}
		}
		if !changed {
			break
		}
	}
	out := make([]bpf.RawInstruction, 0, total)
	target := func(l label, end int) int {
		if l == next {
			return end
		}
		return lpos[l]
	}
	for i := range a.ins {
		in := &a.ins[i]
		if in.mark >= 0 {
			continue
		}
		p, end := pos[i], pos[i]+in.size()
		off := func(from, to int) (int, error) {
			d := to - (from + 1)
			if d < 0 {
				return 0, fmt.Errorf("internal error: backward jump at %d", from)
			}
			return d, nil
		}
		switch {
		case in.op == opJa:
			d, err := off(p, target(in.jt, end))
			if err != nil {
				return nil, err
			}
			out = append(out, bpf.RawInstruction{Op: opJa, K: uint32(d)})
		case isCond(in.op):
			t, f := target(in.jt, end), target(in.jf, end)
			j := bpf.RawInstruction{Op: in.op, K: in.k}
			var tramp []bpf.RawInstruction
			slot := p + 1 // where the next trampoline goes
			if in.farT {
				t2 := slot
				d, err := off(slot, t)
				if err != nil {
					return nil, err
				}
				tramp = append(tramp, bpf.RawInstruction{Op: opJa, K: uint32(d)})
				t = t2
				slot++
			}
			if in.farF {
				f2 := slot
				d, err := off(slot, f)
				if err != nil {
					return nil, err
				}
				tramp = append(tramp, bpf.RawInstruction{Op: opJa, K: uint32(d)})
				f = f2
			}
			dt, err := off(p, t)
			if err != nil {
				return nil, err
			}
			df, err := off(p, f)
			if err != nil {
				return nil, err
			}
			if dt > 255 || df > 255 {
				return nil, fmt.Errorf("internal error: jump out of range at %d", p)
			}
			j.Jt, j.Jf = uint8(dt), uint8(df)
			out = append(out, j)
			out = append(out, tramp...)
		default:
			out = append(out, bpf.RawInstruction{Op: in.op, K: in.k})
		}
	}
	return out, nil
}
