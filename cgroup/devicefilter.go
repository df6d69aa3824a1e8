//go:build linux

package cgroup

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"unsafe"

	"github.com/berthrt/berth/errdefs"
	"golang.org/x/sys/unix"
)

// Device control on cgroup v2 is an eBPF program of type
// BPF_PROG_TYPE_CGROUP_DEVICE attached to the group. berth assembles the
// few instructions it needs itself and loads them with bpf(2) through
// x/sys/unix, rather than pulling in cilium/ebpf (which containerd's
// cgroup2.DeviceFilter uses) for one small program.
//
// The program reads struct bpf_cgroup_dev_ctx { u32 access_type; u32 major;
// u32 minor; }, where access_type is type | access<<16, and returns 1 to
// allow the access, 0 to deny it. Rules are tested last to first; the first
// that matches decides; no match denies.

// bpf instruction opcodes used here.
const (
	opLdxW    = unix.BPF_LDX | unix.BPF_MEM | unix.BPF_W // dst = *(u32 *)(src + off)
	opMovX    = unix.BPF_ALU64 | unix.BPF_MOV | unix.BPF_X
	opMovK    = unix.BPF_ALU64 | unix.BPF_MOV | unix.BPF_K
	opAndK    = unix.BPF_ALU64 | unix.BPF_AND | unix.BPF_K
	opRshK    = unix.BPF_ALU64 | unix.BPF_RSH | unix.BPF_K
	opJneK    = unix.BPF_JMP | unix.BPF_JNE | unix.BPF_K
	opJeqK    = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
	opExit    = unix.BPF_JMP | unix.BPF_EXIT
	devBlock  = 1 // BPF_DEVCG_DEV_BLOCK
	devChar   = 2 // BPF_DEVCG_DEV_CHAR
	accMknod  = 1 // BPF_DEVCG_ACC_MKNOD
	accRead   = 2
	accWrite  = 4
	accAll    = accMknod | accRead | accWrite
	regCtx    = 1
	regType   = 2
	regAccess = 3
	regMajor  = 4
	regMinor  = 5
	regTmp    = 6
)

type insn struct {
	code uint8
	dst  uint8
	src  uint8
	off  int16
	imm  int32
}

func (i insn) encode(b []byte) {
	b[0] = i.code
	b[1] = i.dst&0xf | i.src<<4
	binary.LittleEndian.PutUint16(b[2:], uint16(i.off))
	binary.LittleEndian.PutUint32(b[4:], uint32(i.imm))
}

func accessBits(s string) int32 {
	var a int32
	for _, c := range s {
		switch c {
		case 'r':
			a |= accRead
		case 'w':
			a |= accWrite
		case 'm':
			a |= accMknod
		}
	}
	return a
}

// deviceProgram assembles the filter for rules.
func deviceProgram(rules []DeviceRule) []insn {
	p := []insn{
		{code: opLdxW, dst: regType, src: regCtx, off: 0},
		{code: opMovX, dst: regAccess, src: regType},
		{code: opAndK, dst: regType, imm: 0xffff},
		{code: opRshK, dst: regAccess, imm: 16},
		{code: opLdxW, dst: regMajor, src: regCtx, off: 4},
		{code: opLdxW, dst: regMinor, src: regCtx, off: 8},
	}
	for i := len(rules) - 1; i >= 0; i-- {
		r := rules[i]
		var blk []insn
		// Each test jumps past the end of the block (to the next rule) when
		// it fails; the offset is patched once the block is complete.
		const skip = -1
		switch r.Type {
		case 'c':
			blk = append(blk, insn{code: opJneK, dst: regType, imm: devChar, off: skip})
		case 'b':
			blk = append(blk, insn{code: opJneK, dst: regType, imm: devBlock, off: skip})
		}
		acc := accessBits(r.Access)
		if r.Allow && acc != accAll {
			// Every requested access must be in the rule.
			blk = append(blk,
				insn{code: opMovX, dst: regTmp, src: regAccess},
				insn{code: opAndK, dst: regTmp, imm: ^acc & accAll},
				insn{code: opJneK, dst: regTmp, imm: 0, off: skip})
		} else if !r.Allow && acc != accAll {
			// Any requested access in the rule denies.
			blk = append(blk,
				insn{code: opMovX, dst: regTmp, src: regAccess},
				insn{code: opAndK, dst: regTmp, imm: acc},
				insn{code: opJeqK, dst: regTmp, imm: 0, off: skip})
		}
		if r.Major >= 0 && r.Type != 'a' {
			blk = append(blk, insn{code: opJneK, dst: regMajor, imm: int32(r.Major), off: skip})
		}
		if r.Minor >= 0 && r.Type != 'a' {
			blk = append(blk, insn{code: opJneK, dst: regMinor, imm: int32(r.Minor), off: skip})
		}
		ret := int32(0)
		if r.Allow {
			ret = 1
		}
		blk = append(blk, insn{code: opMovK, dst: 0, imm: ret}, insn{code: opExit})
		for j := range blk {
			if blk[j].off == skip && blk[j].code != opExit {
				blk[j].off = int16(len(blk) - j - 1)
			}
		}
		p = append(p, blk...)
	}
	return append(p, insn{code: opMovK, dst: 0, imm: 0}, insn{code: opExit})
}

func bpf(cmd int, attr unsafe.Pointer, size uintptr) (int, error) {
	r, _, e := unix.Syscall(unix.SYS_BPF, uintptr(cmd), uintptr(attr), size)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// loadDeviceProgram loads the program and returns its fd.
func loadDeviceProgram(rules []DeviceRule) (int, error) {
	prog := deviceProgram(rules)
	code := make([]byte, 8*len(prog))
	for i, in := range prog {
		in.encode(code[8*i:])
	}
	license := []byte("Apache-2.0\x00")
	logBuf := make([]byte, 8192)
	// union bpf_attr, BPF_PROG_LOAD part.
	var attr struct {
		progType    uint32
		insnCnt     uint32
		insns       uint64
		license     uint64
		logLevel    uint32
		logSize     uint32
		logBuf      uint64
		kernVersion uint32
		progFlags   uint32
		progName    [16]byte
	}
	attr.progType = unix.BPF_PROG_TYPE_CGROUP_DEVICE
	attr.insnCnt = uint32(len(prog))
	attr.insns = uint64(uintptr(unsafe.Pointer(&code[0])))
	attr.license = uint64(uintptr(unsafe.Pointer(&license[0])))
	copy(attr.progName[:], "berth_devices")
	fd, err := bpf(unix.BPF_PROG_LOAD, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	if err != nil {
		// Load again with the verifier's log, to say why.
		attr.logLevel = 1
		attr.logSize = uint32(len(logBuf))
		attr.logBuf = uint64(uintptr(unsafe.Pointer(&logBuf[0])))
		_, err2 := bpf(unix.BPF_PROG_LOAD, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
		runtime.KeepAlive(logBuf)
		n := 0
		for n < len(logBuf) && logBuf[n] != 0 {
			n++
		}
		if err2 == nil {
			return -1, fmt.Errorf("cgroup: load device filter: %w", err)
		}
		return -1, fmt.Errorf("cgroup: load device filter: %w: %s", err, logBuf[:n])
	}
	runtime.KeepAlive(code)
	runtime.KeepAlive(license)
	return fd, nil
}

type attachAttr struct {
	targetFd     uint32
	attachBpfFd  uint32
	attachType   uint32
	attachFlags  uint32
	replaceBpfFd uint32
}

// Loading a program runs the verifier and JIT (about half a millisecond,
// and the kernel frees programs lazily, so rapid reloads can hit EAGAIN).
// The programs for Docker's default rules and for allow-all are loaded once
// per process and shared by every group; other rule sets belong to their
// group.
var (
	defaultProgOnce, allowAllProgOnce sync.Once
	defaultProg, allowAllProg         int
	defaultProgErr, allowAllProgErr   error
)

// deviceProgramFD returns a loaded program for rules and whether the
// caller owns (must close) it.
func deviceProgramFD(rules []DeviceRule) (int, bool, error) {
	switch {
	case sameDevices(rules, DefaultDevices()):
		defaultProgOnce.Do(func() { defaultProg, defaultProgErr = loadDeviceProgram(rules) })
		return defaultProg, false, defaultProgErr
	case sameDevices(rules, AllowAllDevices()):
		allowAllProgOnce.Do(func() { allowAllProg, allowAllProgErr = loadDeviceProgram(rules) })
		return allowAllProg, false, allowAllProgErr
	}
	fd, err := loadDeviceProgram(rules)
	return fd, true, err
}

// attachDeviceFilter attaches the program for rules to the v2 directory,
// and detaches the one it replaces.
func (c *Cgroup) attachDeviceFilter(rules []DeviceRule) error {
	prog, owned, err := deviceProgramFD(rules)
	if err != nil {
		if errors.Is(err, unix.EPERM) {
			return fmt.Errorf("%w: %w", err, errdefs.ErrUnsupported)
		}
		return err
	}
	release := func() {
		if owned {
			unix.Close(prog)
		}
	}
	dir, err := unix.Open(c.v2, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		release()
		return fmt.Errorf("cgroup: open %s: %w", c.v2, err)
	}
	defer unix.Close(dir)
	attr := attachAttr{targetFd: uint32(dir), attachBpfFd: uint32(prog), attachType: unix.BPF_CGROUP_DEVICE, attachFlags: unix.BPF_F_ALLOW_MULTI}
	if _, err := bpf(unix.BPF_PROG_ATTACH, unsafe.Pointer(&attr), unsafe.Sizeof(attr)); err != nil {
		release()
		return fmt.Errorf("cgroup: attach device filter to %s: %w", c.v2, err)
	}
	if c.devProg >= 0 {
		old := attachAttr{targetFd: uint32(dir), attachBpfFd: uint32(c.devProg), attachType: unix.BPF_CGROUP_DEVICE}
		bpf(unix.BPF_PROG_DETACH, unsafe.Pointer(&old), unsafe.Sizeof(old))
		c.closeProg()
	} else if !c.fresh {
		// A group opened with Load may carry a program from its creator.
		detachOthers(dir, prog)
	}
	c.devProg, c.devProgOwned = prog, owned
	return nil
}

func (c *Cgroup) closeProg() {
	if c.devProg >= 0 && c.devProgOwned {
		unix.Close(c.devProg)
	}
	c.devProg = -1
}

// detachOthers detaches every device program of the group but keep.
func detachOthers(dir, keep int) {
	var info struct {
		progType uint32
		id       uint32
		_        [200]byte
	}
	var infoAttr struct {
		fd      uint32
		infoLen uint32
		info    uint64
	}
	infoAttr.fd = uint32(keep)
	infoAttr.infoLen = uint32(unsafe.Sizeof(info))
	infoAttr.info = uint64(uintptr(unsafe.Pointer(&info)))
	if _, err := bpf(unix.BPF_OBJ_GET_INFO_BY_FD, unsafe.Pointer(&infoAttr), unsafe.Sizeof(infoAttr)); err != nil {
		return
	}
	keepID := info.id
	ids := make([]uint32, 64)
	var q struct {
		targetFd    uint32
		attachType  uint32
		queryFlags  uint32
		attachFlags uint32
		progIDs     uint64
		progCnt     uint32
		_           uint32
	}
	q.targetFd = uint32(dir)
	q.attachType = unix.BPF_CGROUP_DEVICE
	q.progIDs = uint64(uintptr(unsafe.Pointer(&ids[0])))
	q.progCnt = uint32(len(ids))
	if _, err := bpf(unix.BPF_PROG_QUERY, unsafe.Pointer(&q), unsafe.Sizeof(q)); err != nil {
		return
	}
	for _, id := range ids[:q.progCnt] {
		if id == keepID {
			continue
		}
		var g struct {
			id, next, flags uint32
		}
		g.id = id
		fd, err := bpf(unix.BPF_PROG_GET_FD_BY_ID, unsafe.Pointer(&g), unsafe.Sizeof(g))
		if err != nil {
			continue
		}
		d := attachAttr{targetFd: uint32(dir), attachBpfFd: uint32(fd), attachType: unix.BPF_CGROUP_DEVICE}
		bpf(unix.BPF_PROG_DETACH, unsafe.Pointer(&d), unsafe.Sizeof(d))
		unix.Close(fd)
	}
	runtime.KeepAlive(ids)
	runtime.KeepAlive(&info)
}
