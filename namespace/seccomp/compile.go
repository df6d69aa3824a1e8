package seccomp

import (
	"cmp"
	"fmt"
	"slices"

	"golang.org/x/net/bpf"

	"github.com/berthrt/berth/errdefs"
)

// Return values of a seccomp filter (linux/seccomp.h).
const (
	retKillProcess = 0x80000000
	retKillThread  = 0x00000000
	retTrap        = 0x00030000
	retErrno       = 0x00050000
	retUserNotif   = 0x7fc00000
	retTrace       = 0x7ff00000
	retLog         = 0x7ffc0000
	retAllow       = 0x7fff0000
)

// Offsets in struct seccomp_data. Arguments are 64-bit in the native byte
// order; every target here is little-endian, so the low word comes first.
const (
	offNr   = 0
	offArch = 4
	offArgs = 16
)

const defaultErrno = 1 // EPERM

// Compile resolves p for a container with the capabilities caps (its
// bounding set; "CAP_SYS_ADMIN" or "SYS_ADMIN") on the architecture arch (a
// GOARCH: "amd64", "arm64", "386", "arm") and returns the classic BPF
// program the kernel runs on each system call.
//
// Resolution follows Docker: a rule is dropped when its Excludes matches
// (any listed capability present, the architecture listed, the kernel at
// least MinKernel) or its Includes does not (a listed capability missing,
// the architecture not listed, the kernel older than MinKernel). MinKernel
// is checked against the running kernel on Linux and taken as met
// elsewhere. Each name is resolved in every ABI the filter covers; a name
// an ABI lacks is skipped there.
//
// The ABIs covered are the native one plus, on amd64, the sub-architectures
// SCMP_ARCH_X86 (i386) and SCMP_ARCH_X32, and on arm64 SCMP_ARCH_ARM, when
// the profile lists them (ArchMap entry of the native architecture, or
// Architectures). A call from any other ABI (another seccomp_data.arch, or
// an x32 call when x32 is not listed) gets the default action, except that
// an ALLOW or LOG default becomes ERRNO(EPERM) for them so that a
// deny-list profile cannot be bypassed through a second ABI.
//
// When several rules name the same system call, the rules with argument
// conditions are tried first, in profile order, and the first that matches
// decides; then the first unconditional rule decides; with none, the
// default action applies. The conditions of one rule must all hold, except
// that a rule with two conditions on the same argument index is split into
// one rule per condition (any may hold), as runc does.
//
// The program checks seccomp_data.arch, then finds the system call number
// by binary search over ranges of numbers that share a decision (about
// eight comparisons for Docker's profile, where a linear list would take
// up to 400), then checks arguments. Jumps farther than a classic BPF jump
// reaches go through JA trampolines.
//
// Errors: errdefs.ErrUnsupported for another architecture or an
// SCMP_ACT_NOTIFY rule, errdefs.ErrInvalid (a *ProfileError) for a profile
// Validate rejects, and errdefs.ErrInvalid for a filter longer than the
// kernel's 4096 instructions.
func Compile(p *Profile, arch string, caps []string) ([]bpf.RawInstruction, error) {
	if p == nil {
		return nil, fmt.Errorf("seccomp: nil profile: %w", errdefs.ErrInvalid)
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	tg, ok := targets()[arch]
	if !ok {
		return nil, fmt.Errorf("seccomp: architecture %q: %w", arch, errdefs.ErrUnsupported)
	}
	kv, kvOK := hostKernel()
	rules, err := resolve(p, tg.native.filter, capSet(caps), kv, kvOK)
	if err != nil {
		return nil, err
	}
	abis := coveredABIs(p, tg)

	def, err := retValue(p.DefaultAction, p.DefaultErrnoRet)
	if err != nil {
		return nil, fmt.Errorf("seccomp: defaultAction: %w", err)
	}
	badArch := def
	if p.DefaultAction == ActAllow || p.DefaultAction == ActLog {
		badArch = retErrno | defaultErrno
	}

	// Group the ABIs by audit architecture: x32 shares x86-64's.
	var audits []uint32
	byAudit := map[uint32][]abi{}
	for _, a := range abis {
		if _, ok := byAudit[a.audit]; !ok {
			audits = append(audits, a.audit)
		}
		byAudit[a.audit] = append(byAudit[a.audit], a)
	}

	as := assembler{ins: make([]ainsn, 0, 2048)}
	sections := make([]label, len(audits))
	as.ldw(offArch)
	for i, au := range audits {
		sections[i] = as.newLabel()
		as.jump(opJeqK, au, sections[i], next)
	}
	as.ret(badArch)
	for i, au := range audits {
		as.bind(sections[i])
		c := sectionCompiler{as: &as, def: def, bits32: byAudit[au][0].bits32}
		if err := c.section(byAudit[au], rules, badArch); err != nil {
			return nil, err
		}
	}
	prog, err := as.assemble()
	if err != nil {
		return nil, fmt.Errorf("seccomp: %w: %w", errdefs.ErrInvalid, err)
	}
	return prog, nil
}

// rule is a resolved rule: an action under conditions (all must hold).
type rule struct {
	names []string
	conds []Arg
	ret   uint32
}

func capSet(caps []string) map[string]bool {
	s := make(map[string]bool, len(caps))
	for _, c := range caps {
		s[normCap(c)] = true
	}
	return s
}

// resolve applies Includes and Excludes and turns actions into return
// values.
func resolve(p *Profile, arch string, caps map[string]bool, kv kernelVersion, kvOK bool) ([]rule, error) {
	var out []rule
	for i := range p.Syscalls {
		s := &p.Syscalls[i]
		if !keep(s, arch, caps, kv, kvOK) {
			continue
		}
		if s.Action == ActNotify {
			return nil, fmt.Errorf("seccomp: syscalls[%d]: action %s: %w", i, s.Action, errdefs.ErrUnsupported)
		}
		ret, err := retValue(s.Action, s.ErrnoRet)
		if err != nil {
			return nil, fmt.Errorf("seccomp: syscalls[%d]: %w", i, err)
		}
		names := s.Names
		if s.Name != "" {
			names = []string{s.Name}
		}
		// Two conditions on one index: one rule per condition (runc).
		var counts [6]int
		split := false
		for _, a := range s.Args {
			counts[a.Index]++
			if counts[a.Index] > 1 {
				split = true
			}
		}
		if split {
			for _, a := range s.Args {
				out = append(out, rule{names: names, conds: []Arg{a}, ret: ret})
			}
			continue
		}
		out = append(out, rule{names: names, conds: s.Args, ret: ret})
	}
	return out, nil
}

func keep(s *Syscall, arch string, caps map[string]bool, kv kernelVersion, kvOK bool) bool {
	if e := s.Excludes; e != nil {
		if slices.Contains(e.Arches, arch) {
			return false
		}
		for _, c := range e.Caps {
			if caps[normCap(c)] {
				return false
			}
		}
		if e.MinKernel != "" {
			min, _ := parseKernel(e.MinKernel)
			if !kvOK || !kv.less(min) {
				return false
			}
		}
	}
	if in := s.Includes; in != nil {
		if len(in.Arches) > 0 && !slices.Contains(in.Arches, arch) {
			return false
		}
		for _, c := range in.Caps {
			if !caps[normCap(c)] {
				return false
			}
		}
		if in.MinKernel != "" && kvOK {
			min, _ := parseKernel(in.MinKernel)
			if kv.less(min) {
				return false
			}
		}
	}
	return true
}

func coveredABIs(p *Profile, tg target) []abi {
	abis := []abi{tg.native}
	var listed []Arch
	if len(p.ArchMap) > 0 {
		for _, m := range p.ArchMap {
			if m.Arch == tg.native.scmp {
				listed = m.SubArches
				break
			}
		}
	} else {
		listed = p.Architectures
	}
	for _, sub := range tg.subs {
		if slices.Contains(listed, sub.scmp) {
			abis = append(abis, sub)
		}
	}
	return abis
}

func retValue(a Action, errno *uint) (uint32, error) {
	data := uint32(defaultErrno)
	if errno != nil {
		data = uint32(*errno)
	}
	switch a {
	case ActAllow:
		return retAllow, nil
	case ActErrno:
		return retErrno | data&0xffff, nil
	case ActTrace:
		return retTrace | data&0xffff, nil
	case ActKill, ActKillThread:
		return retKillThread, nil
	case ActKillProcess:
		return retKillProcess, nil
	case ActTrap:
		return retTrap, nil
	case ActLog:
		return retLog, nil
	case ActNotify:
		return 0, fmt.Errorf("action %s: %w", a, errdefs.ErrUnsupported)
	}
	return 0, fmt.Errorf("unknown action %q: %w", a, errdefs.ErrInvalid)
}

// block is the decision for one range of system call numbers: a plain
// return value, or the rules of one system call.
type block struct {
	lo, hi uint32 // inclusive
	rules  []rule // nil: ret
	ret    uint32
}

type sectionCompiler struct {
	as     *assembler
	def    uint32
	bits32 bool
}

// section emits the code for one audit architecture: the binary search
// over the numbers of all its ABIs.
func (c *sectionCompiler) section(abis []abi, rules []rule, badArch uint32) error {
	// Every (number, rule) pair, sorted by number then profile order. The
	// ABIs of one section never share a number.
	type hit struct {
		nr  uint32
		idx int32
	}
	hits := make([]hit, 0, 1024)
	x32 := false
	for _, a := range abis {
		if a.scmp == ArchX32 {
			x32 = true
		}
		for ri := range rules {
			for _, n := range rules[ri].names {
				if nr, ok := a.nr(n); ok {
					hits = append(hits, hit{nr, int32(ri)})
				}
			}
		}
	}
	slices.SortFunc(hits, func(a, b hit) int {
		if a.nr != b.nr {
			return cmp.Compare(a.nr, b.nr)
		}
		return cmp.Compare(a.idx, b.idx)
	})

	// Gaps: the default action; on x86-64 without x32 the x32 half of
	// the number space is a foreign ABI.
	gap := func(nr uint32) uint32 {
		if abis[0].audit == auditArchX86_64 && !x32 && nr >= x32BitNr {
			return badArch
		}
		return c.def
	}
	blocks := make([]block, 0, 256)
	add := func(b block) {
		if n := len(blocks); n > 0 && b.rules == nil && blocks[n-1].rules == nil &&
			blocks[n-1].ret == b.ret && blocks[n-1].hi+1 == b.lo {
			blocks[n-1].hi = b.hi
			return
		}
		blocks = append(blocks, b)
	}
	addGap := func(lo, hi uint64) { // [lo, hi), split at the x32 boundary
		for lo < hi {
			end := hi
			if lo < x32BitNr && end > x32BitNr {
				end = x32BitNr
			}
			add(block{lo: uint32(lo), hi: uint32(end - 1), ret: gap(uint32(lo))})
			lo = end
		}
	}
	var cur uint64
	var idxs []int32
	for i := 0; i < len(hits); {
		nr := hits[i].nr
		idxs = idxs[:0]
		for ; i < len(hits) && hits[i].nr == nr; i++ {
			if len(idxs) == 0 || idxs[len(idxs)-1] != hits[i].idx {
				idxs = append(idxs, hits[i].idx)
			}
		}
		addGap(cur, uint64(nr))
		if rs := order(rules, idxs); rs == nil {
			add(block{lo: nr, hi: nr, ret: rules[idxs[firstUncond(rules, idxs)]].ret})
		} else {
			add(block{lo: nr, hi: nr, rules: rs})
		}
		cur = uint64(nr) + 1
	}
	addGap(cur, 1<<32)

	c.as.ldw(offNr)
	c.search(blocks)
	return nil
}

func firstUncond(rules []rule, idxs []int32) int {
	for i, x := range idxs {
		if len(rules[x].conds) == 0 {
			return i
		}
	}
	return -1
}

// order returns the rules of one system call (idxs, in profile order) in
// the order the program tries them: conditional rules first, in profile
// order, then the first unconditional rule; rules after that one and
// trailing conditional rules with its action are dropped. It returns nil
// when the first unconditional rule alone decides.
func order(rules []rule, idxs []int32) []rule {
	u := firstUncond(rules, idxs)
	var out []rule
	for _, x := range idxs {
		if len(rules[x].conds) > 0 {
			out = append(out, rules[x])
		}
	}
	if u < 0 {
		return out
	}
	uncond := rules[idxs[u]]
	for len(out) > 0 && out[len(out)-1].ret == uncond.ret {
		out = out[:len(out)-1]
	}
	if len(out) == 0 {
		return nil
	}
	return append(out, uncond)
}

// search emits a binary search over blocks, which cover the whole number
// space in order; A holds the system call number.
func (c *sectionCompiler) search(blocks []block) {
	if len(blocks) == 1 {
		c.emitBlock(blocks[0])
		return
	}
	mid := len(blocks) / 2
	right := c.as.newLabel()
	c.as.jump(opJgeK, blocks[mid].lo, right, next)
	c.search(blocks[:mid])
	c.as.bind(right)
	c.search(blocks[mid:])
}

func (c *sectionCompiler) emitBlock(b block) {
	if b.rules == nil {
		c.as.ret(b.ret)
		return
	}
	for _, r := range b.rules {
		if len(r.conds) == 0 {
			c.as.ret(r.ret)
			return
		}
		fail := c.as.newLabel()
		for _, a := range r.conds {
			c.cond(a, fail)
		}
		c.as.ret(r.ret)
		c.as.bind(fail)
	}
	c.as.ret(c.def)
}

// cond emits a test of one argument condition that falls through when it
// holds and jumps to fail otherwise. 64-bit values are compared as two
// 32-bit words, high word first: for an ordering, a high word that differs
// decides, an equal one defers to the low words.
func (c *sectionCompiler) cond(a Arg, fail label) {
	as := c.as
	lo := offArgs + 8*uint32(a.Index)
	hi := lo + 4
	vlo, vhi := uint32(a.Value), uint32(a.Value>>32)
	if a.Op == OpMaskedEqual {
		mlo, mhi := vlo, vhi
		dlo, dhi := uint32(a.ValueTwo), uint32(a.ValueTwo>>32)
		if !c.bits32 {
			as.ldw(hi)
			as.stmt(opAndK, mhi)
			as.jump(opJeqK, dhi, next, fail)
		}
		as.ldw(lo)
		as.stmt(opAndK, mlo)
		as.jump(opJeqK, dlo, next, fail)
		return
	}
	if c.bits32 {
		// 32-bit ABIs: the argument is the low word; a value above
		// 32 bits compares as if the argument were zero-extended.
		as.ldw(lo)
		c.cmp32(a.Op, vlo, vhi != 0, fail)
		return
	}
	ok := as.newLabel()
	as.ldw(hi)
	switch a.Op {
	case OpEqualTo:
		as.jump(opJeqK, vhi, next, fail)
	case OpNotEqual:
		as.jump(opJeqK, vhi, next, ok)
	case OpGreaterThan, OpGreaterEqual:
		// hi > vhi: holds; hi < vhi: fails; equal: low words decide.
		as.jump(opJgtK, vhi, ok, next)
		as.jump(opJeqK, vhi, next, fail)
	case OpLessThan, OpLessEqual:
		as.jump(opJgtK, vhi, fail, next)
		as.jump(opJeqK, vhi, next, ok)
	}
	as.ldw(lo)
	c.cmp32(a.Op, vlo, false, fail)
	as.bind(ok)
}

// cmp32 compares A with v and falls through when op holds. With over set,
// the value has bits above the 32 the argument has: A < value always.
func (c *sectionCompiler) cmp32(op Operator, v uint32, over bool, fail label) {
	as := c.as
	if over {
		switch op {
		case OpEqualTo, OpGreaterThan, OpGreaterEqual:
			as.ja(fail)
		}
		// NE, LT, LE hold.
		return
	}
	switch op {
	case OpEqualTo:
		as.jump(opJeqK, v, next, fail)
	case OpNotEqual:
		as.jump(opJeqK, v, fail, next)
	case OpGreaterThan:
		as.jump(opJgtK, v, next, fail)
	case OpGreaterEqual:
		as.jump(opJgeK, v, next, fail)
	case OpLessThan:
		as.jump(opJgeK, v, fail, next)
	case OpLessEqual:
		as.jump(opJgtK, v, fail, next)
	}
}
