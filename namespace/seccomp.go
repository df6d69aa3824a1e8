//go:build linux

package namespace

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"sync"

	"github.com/berthrt/berth/namespace/seccomp"
	"golang.org/x/net/bpf"
)

// Seccomp filters are compiled by the owner, once per distinct profile and
// capability set (compiling Docker's profile takes milliseconds), and the
// init only installs the program. A profile with Flags is compiled and
// installed by the init itself (seccomp.Install handles the flags).

var seccompCache struct {
	mu    sync.Mutex
	progs map[[32]byte][]byte
}

// compileSeccomp returns the encoded BPF program for p and caps, or nil
// when the init must compile it (p has Flags).
func compileSeccomp(p *seccomp.Profile, caps []string) ([]byte, error) {
	if len(p.Flags) > 0 {
		return nil, nil
	}
	js, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	h.Write(js)
	h.Write([]byte{0})
	h.Write([]byte(strings.Join(caps, ",")))
	var key [32]byte
	copy(key[:], h.Sum(nil))

	seccompCache.mu.Lock()
	prog, ok := seccompCache.progs[key]
	seccompCache.mu.Unlock()
	if ok {
		return prog, nil
	}
	insns, err := seccomp.Compile(p, runtime.GOARCH, caps)
	if err != nil {
		return nil, err
	}
	prog = make([]byte, 0, 8*len(insns))
	for _, in := range insns {
		prog = binary.LittleEndian.AppendUint16(prog, in.Op)
		prog = append(prog, in.Jt, in.Jf)
		prog = binary.LittleEndian.AppendUint32(prog, in.K)
	}
	seccompCache.mu.Lock()
	if seccompCache.progs == nil {
		seccompCache.progs = map[[32]byte][]byte{}
	}
	seccompCache.progs[key] = prog
	seccompCache.mu.Unlock()
	return prog, nil
}

// installSeccomp runs in the init: the precompiled program, or the profile.
func installSeccomp(prog []byte, p *seccomp.Profile, caps []string) error {
	if prog == nil {
		if p == nil {
			return nil
		}
		return seccomp.Install(p, caps)
	}
	if len(prog)%8 != 0 {
		return fmt.Errorf("seccomp program of %d bytes", len(prog))
	}
	insns := make([]bpf.RawInstruction, len(prog)/8)
	for i := range insns {
		b := prog[8*i:]
		insns[i] = bpf.RawInstruction{Op: binary.LittleEndian.Uint16(b), Jt: b[2], Jf: b[3], K: binary.LittleEndian.Uint32(b[4:])}
	}
	return seccomp.InstallFilter(insns)
}
