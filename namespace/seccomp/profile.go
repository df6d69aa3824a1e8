package seccomp

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/berthrt/berth/errdefs"
)

// Profile is a seccomp profile in Docker's JSON format (the format of
// `docker run --security-opt seccomp=FILE` and of moby's
// profiles/seccomp/default.json). The zero Profile is invalid: it has no
// DefaultAction. Use [DefaultProfile] for Docker's default, [Load] to read a
// file.
type Profile struct {
	// DefaultAction is what a system call no rule matches gets. Required.
	DefaultAction Action `json:"defaultAction"`
	// DefaultErrnoRet is the errno DefaultAction ERRNO (or the data
	// DefaultAction TRACE) returns; nil means EPERM (1).
	DefaultErrnoRet *uint `json:"defaultErrnoRet,omitempty"`
	// Architectures lists the seccomp architectures (SCMP_ARCH_*) the
	// filter covers besides the native one. Nil with a nil ArchMap means
	// the native architecture only. Use either Architectures or ArchMap.
	Architectures []Arch `json:"architectures,omitempty"`
	// ArchMap gives, per native architecture, the sub-architectures
	// (32-bit and x32 ABIs) the filter also covers. Only the entry of the
	// architecture compiled for is used.
	ArchMap []ArchMap `json:"archMap,omitempty"`
	// Flags are SECCOMP_FILTER_FLAG_* names passed to seccomp(2) by
	// Install; nil means none besides SECCOMP_FILTER_FLAG_TSYNC, which
	// Install always sets. Known: SECCOMP_FILTER_FLAG_TSYNC,
	// SECCOMP_FILTER_FLAG_LOG, SECCOMP_FILTER_FLAG_SPEC_ALLOW.
	Flags []string `json:"flags,omitempty"`
	// ListenerPath and ListenerMetadata belong to SCMP_ACT_NOTIFY, which
	// berth does not support; they are kept so a profile round-trips.
	ListenerPath     string `json:"listenerPath,omitempty"`
	ListenerMetadata string `json:"listenerMetadata,omitempty"`
	// Syscalls are the rules. See Compile for how rules that name the same
	// system call combine.
	Syscalls []Syscall `json:"syscalls"`
}

// ArchMap is one entry of Profile.ArchMap.
type ArchMap struct {
	Arch      Arch   `json:"architecture"`
	SubArches []Arch `json:"subArchitectures"`
}

// Syscall is one rule: the system calls it names get Action when every
// argument condition in Args holds (but see Compile for conditions that
// repeat an argument index). Includes and Excludes make the rule depend on
// the container's capabilities, the architecture and the kernel version.
type Syscall struct {
	// Names are the system calls, by their kernel names ("openat",
	// "_llseek"). A name the compiled-for architecture lacks is skipped.
	Names []string `json:"names,omitempty"`
	// Name is the single-name form of old profiles; use Names.
	Name string `json:"name,omitempty"`
	// Action is what a matching call gets. Required.
	Action Action `json:"action"`
	// ErrnoRet is the errno of an ERRNO action or the data of a TRACE
	// action; nil means EPERM (1). Invalid with any other action.
	ErrnoRet *uint `json:"errnoRet,omitempty"`
	// Args are conditions on the call's arguments; nil means none.
	Args []Arg `json:"args,omitempty"`
	// Comment is ignored.
	Comment string `json:"comment,omitempty"`
	// Includes, when not nil, keeps the rule only if all its conditions
	// hold.
	Includes *Filter `json:"includes,omitempty"`
	// Excludes, when not nil, drops the rule if any of its conditions
	// holds.
	Excludes *Filter `json:"excludes,omitempty"`
}

// Arg is a condition on one system call argument.
type Arg struct {
	// Index is the argument, 0 to 5.
	Index uint `json:"index"`
	// Value is compared with the argument; for SCMP_CMP_MASKED_EQ it is
	// the mask.
	Value uint64 `json:"value"`
	// ValueTwo is what the masked argument must equal for
	// SCMP_CMP_MASKED_EQ; other operators ignore it.
	ValueTwo uint64 `json:"valueTwo,omitempty"`
	// Op is the comparison. Required.
	Op Operator `json:"op"`
}

// Filter is the condition of Syscall.Includes or Syscall.Excludes. Its zero
// value has no condition: as Includes it keeps the rule, as Excludes it
// drops nothing.
type Filter struct {
	// Caps are capability names ("CAP_SYS_ADMIN"). Includes needs all of
	// them in the container's set; Excludes needs any one.
	Caps []string `json:"caps,omitempty"`
	// Arches are native architecture names as libseccomp spells them
	// ("amd64", "arm64", "x86", "x32", "arm", "s390x", ...), matched
	// against the architecture compiled for, not against sub-architectures.
	Arches []string `json:"arches,omitempty"`
	// MinKernel is "<major>.<minor>": the host kernel must be at least
	// that version (Includes) or older (Excludes). Empty means no
	// condition.
	MinKernel string `json:"minKernel,omitempty"`
}

// Action is a seccomp action as Docker names it (SCMP_ACT_*).
type Action string

// The actions. ActKill is ActKillThread, as in libseccomp.
const (
	ActKill        Action = "SCMP_ACT_KILL"
	ActKillThread  Action = "SCMP_ACT_KILL_THREAD"
	ActKillProcess Action = "SCMP_ACT_KILL_PROCESS"
	ActTrap        Action = "SCMP_ACT_TRAP"
	ActErrno       Action = "SCMP_ACT_ERRNO"
	ActTrace       Action = "SCMP_ACT_TRACE"
	ActAllow       Action = "SCMP_ACT_ALLOW"
	ActLog         Action = "SCMP_ACT_LOG"
	// ActNotify is accepted by Load and refused by Compile: berth has no
	// user-space notification agent.
	ActNotify Action = "SCMP_ACT_NOTIFY"
)

// Operator is an argument comparison (SCMP_CMP_*). Comparisons are
// unsigned and on 64 bits (32 bits for 32-bit ABIs).
type Operator string

// The operators.
const (
	OpNotEqual     Operator = "SCMP_CMP_NE"
	OpLessThan     Operator = "SCMP_CMP_LT"
	OpLessEqual    Operator = "SCMP_CMP_LE"
	OpEqualTo      Operator = "SCMP_CMP_EQ"
	OpGreaterEqual Operator = "SCMP_CMP_GE"
	OpGreaterThan  Operator = "SCMP_CMP_GT"
	OpMaskedEqual  Operator = "SCMP_CMP_MASKED_EQ"
)

// Arch is a seccomp architecture name (SCMP_ARCH_*).
type Arch string

// The architectures the compiler emits code for. The other SCMP_ARCH_*
// names libseccomp knows (MIPS, PPC, S390, RISCV64, LOONGARCH64, ...) are
// valid in a profile and ignored by Compile.
const (
	ArchX86     Arch = "SCMP_ARCH_X86"
	ArchX86_64  Arch = "SCMP_ARCH_X86_64"
	ArchX32     Arch = "SCMP_ARCH_X32"
	ArchARM     Arch = "SCMP_ARCH_ARM"
	ArchAARCH64 Arch = "SCMP_ARCH_AARCH64"
)

var knownArches = sync.OnceValue(func() map[Arch]bool {
	return map[Arch]bool{
		ArchX86: true, ArchX86_64: true, ArchX32: true, ArchARM: true, ArchAARCH64: true,
		"SCMP_ARCH_MIPS": true, "SCMP_ARCH_MIPS64": true, "SCMP_ARCH_MIPS64N32": true,
		"SCMP_ARCH_MIPSEL": true, "SCMP_ARCH_MIPSEL64": true, "SCMP_ARCH_MIPSEL64N32": true,
		"SCMP_ARCH_PPC": true, "SCMP_ARCH_PPC64": true, "SCMP_ARCH_PPC64LE": true,
		"SCMP_ARCH_S390": true, "SCMP_ARCH_S390X": true, "SCMP_ARCH_PARISC": true,
		"SCMP_ARCH_PARISC64": true, "SCMP_ARCH_RISCV64": true, "SCMP_ARCH_LOONGARCH64": true,
		"SCMP_ARCH_M68K": true, "SCMP_ARCH_SH": true, "SCMP_ARCH_SHEB": true,
	}
})

// Native architecture names as used in Filter.Arches (libseccomp's
// spelling, plus the Go spellings Docker's own code accepts).
var knownFilterArches = sync.OnceValue(func() map[string]bool {
	return map[string]bool{
		"x86": true, "amd64": true, "x32": true, "arm": true, "arm64": true,
		"mips": true, "mipsel": true, "mips64": true, "mipsel64": true, "mips64n32": true,
		"mipsel64n32": true, "mips3l64n32": true, "ppc": true, "ppc64": true, "ppc64le": true,
		"s390": true, "s390x": true, "parisc": true, "parisc64": true, "riscv64": true,
		"loong64": true, "loongarch64": true, "m68k": true, "sh": true, "sheb": true,
	}
})

var knownFlags = sync.OnceValue(func() map[string]uintptr {
	return map[string]uintptr{
		"SECCOMP_FILTER_FLAG_TSYNC":      1,
		"SECCOMP_FILTER_FLAG_LOG":        2,
		"SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4,
	}
})

// ProfileError reports a malformed profile: Field is the JSON path of the
// offending value ("syscalls[3].names[1]"). It unwraps to
// errdefs.ErrInvalid.
type ProfileError struct {
	Field  string
	Reason string
}

func (e *ProfileError) Error() string {
	return "seccomp profile: " + e.Field + ": " + e.Reason
}

// Unwrap returns errdefs.ErrInvalid.
func (e *ProfileError) Unwrap() error { return errdefs.ErrInvalid }

func fieldErr(field, format string, a ...any) error {
	return &ProfileError{Field: field, Reason: fmt.Sprintf(format, a...)}
}

// maxProfileSize bounds what Load reads: Docker's default profile is under
// 20 KiB.
const maxProfileSize = 4 << 20

// Load reads and validates a profile in Docker's JSON format. A malformed
// profile yields a *ProfileError or a JSON syntax error, both wrapping
// errdefs.ErrInvalid. Unknown JSON fields are ignored, as Docker does.
func Load(r io.Reader) (*Profile, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxProfileSize+1))
	if err != nil {
		return nil, fmt.Errorf("seccomp profile: read: %w", err)
	}
	if len(b) > maxProfileSize {
		return nil, fmt.Errorf("seccomp profile: larger than %d bytes: %w", maxProfileSize, errdefs.ErrInvalid)
	}
	var p Profile
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("seccomp profile: %w: %w", errdefs.ErrInvalid, err)
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// Validate checks p as Load does: known actions, operators, architectures,
// flags and system call names, argument indexes 0-5, errno values up to
// 4095 and only on ERRNO and TRACE actions, kernel versions "<major>.<minor>".
// It returns a *ProfileError.
func (p *Profile) Validate() error {
	if p.DefaultAction == "" {
		return fieldErr("defaultAction", "missing")
	}
	if !p.DefaultAction.valid() {
		return fieldErr("defaultAction", "unknown action %q", p.DefaultAction)
	}
	if err := checkErrno("defaultErrnoRet", p.DefaultAction, p.DefaultErrnoRet); err != nil {
		return err
	}
	if len(p.Architectures) > 0 && len(p.ArchMap) > 0 {
		return fieldErr("architectures", "both architectures and archMap are set; use one")
	}
	for i, a := range p.Architectures {
		if !knownArches()[a] {
			return fieldErr(fmt.Sprintf("architectures[%d]", i), "unknown architecture %q", a)
		}
	}
	for i, m := range p.ArchMap {
		if !knownArches()[m.Arch] {
			return fieldErr(fmt.Sprintf("archMap[%d].architecture", i), "unknown architecture %q", m.Arch)
		}
		for j, a := range m.SubArches {
			if !knownArches()[a] {
				return fieldErr(fmt.Sprintf("archMap[%d].subArchitectures[%d]", i, j), "unknown architecture %q", a)
			}
		}
	}
	for i, f := range p.Flags {
		if _, ok := knownFlags()[f]; !ok {
			return fieldErr(fmt.Sprintf("flags[%d]", i), "unknown or unsupported flag %q", f)
		}
	}
	for i := range p.Syscalls {
		if err := p.Syscalls[i].validate(fmt.Sprintf("syscalls[%d]", i)); err != nil {
			return err
		}
	}
	return nil
}

func (s *Syscall) validate(field string) error {
	switch {
	case s.Name != "" && len(s.Names) > 0:
		return fieldErr(field+".name", "both name and names are set; use names")
	case s.Name == "" && len(s.Names) == 0:
		return fieldErr(field+".names", "missing")
	}
	if s.Name != "" && !knownSyscall(s.Name) {
		return fieldErr(field+".name", "unknown syscall %q", s.Name)
	}
	for i, n := range s.Names {
		if !knownSyscall(n) {
			return fieldErr(fmt.Sprintf("%s.names[%d]", field, i), "unknown syscall %q", n)
		}
	}
	if s.Action == "" {
		return fieldErr(field+".action", "missing")
	}
	if !s.Action.valid() {
		return fieldErr(field+".action", "unknown action %q", s.Action)
	}
	if err := checkErrno(field+".errnoRet", s.Action, s.ErrnoRet); err != nil {
		return err
	}
	for i, a := range s.Args {
		f := fmt.Sprintf("%s.args[%d]", field, i)
		if a.Index > 5 {
			return fieldErr(f+".index", "index %d out of range 0-5", a.Index)
		}
		if !a.Op.valid() {
			return fieldErr(f+".op", "unknown operator %q", a.Op)
		}
	}
	if err := s.Includes.validate(field + ".includes"); err != nil {
		return err
	}
	return s.Excludes.validate(field + ".excludes")
}

func (f *Filter) validate(field string) error {
	if f == nil {
		return nil
	}
	for i, c := range f.Caps {
		if normCap(c) == "CAP_" {
			return fieldErr(fmt.Sprintf("%s.caps[%d]", field, i), "empty capability")
		}
	}
	for i, a := range f.Arches {
		if !knownFilterArches()[a] {
			return fieldErr(fmt.Sprintf("%s.arches[%d]", field, i), "unknown architecture %q", a)
		}
	}
	if f.MinKernel != "" {
		if _, err := parseKernel(f.MinKernel); err != nil {
			return fieldErr(field+".minKernel", "%v", err)
		}
	}
	return nil
}

func checkErrno(field string, a Action, v *uint) error {
	if v == nil {
		return nil
	}
	if a != ActErrno && a != ActTrace {
		return fieldErr(field, "set with action %s; only %s and %s take one", a, ActErrno, ActTrace)
	}
	if *v > 4095 {
		return fieldErr(field, "%d out of range 0-4095", *v)
	}
	return nil
}

func (a Action) valid() bool {
	switch a {
	case ActKill, ActKillThread, ActKillProcess, ActTrap, ActErrno, ActTrace, ActAllow, ActLog, ActNotify:
		return true
	}
	return false
}

func (o Operator) valid() bool {
	switch o {
	case OpNotEqual, OpLessThan, OpLessEqual, OpEqualTo, OpGreaterEqual, OpGreaterThan, OpMaskedEqual:
		return true
	}
	return false
}

// normCap spells a capability name the canonical way: upper case with the
// CAP_ prefix ("sys_admin" -> "CAP_SYS_ADMIN").
func normCap(c string) string {
	c = strings.ToUpper(strings.TrimSpace(c))
	if !strings.HasPrefix(c, "CAP_") {
		c = "CAP_" + c
	}
	return c
}

// kernelVersion is a kernel's major and minor version.
type kernelVersion struct{ major, minor uint64 }

func (k kernelVersion) less(o kernelVersion) bool {
	return k.major < o.major || (k.major == o.major && k.minor < o.minor)
}

// parseKernel parses a Filter.MinKernel: "<major>.<minor>".
func parseKernel(s string) (kernelVersion, error) {
	maj, rest, ok := strings.Cut(s, ".")
	if !ok {
		return kernelVersion{}, fmt.Errorf("kernel version %q is not <major>.<minor>", s)
	}
	a, err := strconv.ParseUint(maj, 10, 16)
	if err != nil {
		return kernelVersion{}, fmt.Errorf("kernel version %q is not <major>.<minor>", s)
	}
	b, err := strconv.ParseUint(rest, 10, 16)
	if err != nil {
		return kernelVersion{}, fmt.Errorf("kernel version %q is not <major>.<minor>", s)
	}
	if a == 0 && b == 0 {
		return kernelVersion{}, fmt.Errorf("kernel version %q: 0.0 is not a version", s)
	}
	return kernelVersion{a, b}, nil
}

// parseRelease reads the major and minor version from a uname release.
func parseRelease(s string) (kernelVersion, bool) {
	end := len(s)
	for i, c := range s {
		if (c < '0' || c > '9') && c != '.' {
			end = i
			break
		}
	}
	parts := strings.Split(s[:end], ".")
	if len(parts) < 2 {
		return kernelVersion{}, false
	}
	a, err1 := strconv.ParseUint(parts[0], 10, 16)
	b, err2 := strconv.ParseUint(parts[1], 10, 16)
	if err1 != nil || err2 != nil {
		return kernelVersion{}, false
	}
	return kernelVersion{a, b}, true
}
