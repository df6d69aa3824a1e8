//go:build linux

package namespace

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berthrt/berth/errdefs"
)

// The control protocol: JSON messages over a SOCK_SEQPACKET unix socket, one
// message per packet, file descriptors attached with SCM_RIGHTS. Between an
// owner and the init it spawned the messages are in the binary form of
// wire.go instead (see conn.wire); a receiver reads either.
//
// Client to supervisor:
//
//	init    (owner only, first) config + stdio fds + status file fd + listener fd
//	mountfd (owner only, user namespace) one detached mount fd, named by Mount
//	mounts  (owner only, user namespace) the mountfd messages are done
//	go      (owner only) Prestart is done: start the process
//	attach  bind this connection to the main process
//	exec    process config + stdio fds: start a process, bind the connection to it
//	conn    one fd: a new connection (socketpair end) to serve
//	signal  send Sig to the connection's process
//	resize  set the connection's process's terminal size
//	ps      list the processes of the container
//
// Supervisor to client:
//
//	started Pid of the process (+ the pty master fd with a terminal)
//	error   setup failed (Err)
//	exit    Status of the connection's process
//	pids    reply to ps
//	ok      reply to signal/resize (Err set on failure)
type message struct {
	Op      string         `json:"op"`
	Config  *Config        `json:"config,omitempty"`
	Host    *hostInfo      `json:"host,omitempty"`
	Process *ProcessConfig `json:"process,omitempty"`
	Sig     int            `json:"sig,omitempty"`
	Width   uint16         `json:"w,omitempty"`
	Height  uint16         `json:"h,omitempty"`
	Pid     int            `json:"pid,omitempty"`
	Pids    []int          `json:"pids,omitempty"`
	Status  *ExitStatus    `json:"status,omitempty"`
	Err     *wireError     `json:"err,omitempty"`
	// Mount names the fd of a "mountfd" message (see idmap.go).
	Mount string `json:"mount,omitempty"`
	// PidFD, SelfFD, Master say which fds a "started" message carries, in
	// this order: a pidfd of the process, a pidfd of the supervisor, the
	// pty master.
	PidFD  bool `json:"pidfd,omitempty"`
	SelfFD bool `json:"selffd,omitempty"`
	Master bool `json:"master,omitempty"`
	// Stdio says which of stdin, stdout, stderr are attached (in order,
	// after any other fds the op defines).
	Stdio [3]bool `json:"stdio,omitempty"`
}

// reply is a message from the supervisor: the fields of message it sends,
// with the same names, read as a message on the other side. It is a type of
// its own because encoding/json builds the encoder of a type's whole graph
// on its first use: for message (Config and everything below it) that cost
// each container's init about 1 ms of CPU before it could say "started".
type reply struct {
	Op     string      `json:"op"`
	Pid    int         `json:"pid,omitempty"`
	Status *ExitStatus `json:"status,omitempty"`
	Err    *wireError  `json:"err,omitempty"`
	PidFD  bool        `json:"pidfd,omitempty"`
	SelfFD bool        `json:"selffd,omitempty"`
	Master bool        `json:"master,omitempty"`
}

// hostInfo is what the owner learns about the host once and passes on, so
// the init does not have to.
type hostInfo struct {
	// CgroupMounts are the host's cgroup hierarchies under /sys/fs/cgroup:
	// relative path -> fstype/options ("cgroup2", or v1 "cgroup" with the
	// controllers). Empty on a pure cgroup v2 host.
	CgroupV1 []cgroupMount `json:"cgroupV1,omitempty"`
	// StatusFD and ListenFD say whether the init message carries them.
	StatusFD bool `json:"statusFD,omitempty"`
	ListenFD bool `json:"listenFD,omitempty"`
	// MountFDs: the owner sends the rootfs, Files and bind mounts as
	// detached mounts after the clone (a user namespace; see idmap.go).
	MountFDs bool `json:"mountFDs,omitempty"`
	// LastCap is the highest capability the kernel knows.
	LastCap int `json:"lastCap"`
	// NewCgroupNS: the cgroup namespace is already created by clone.
	NewCgroupNS bool `json:"newCgroupNS,omitempty"`
	// SeccompProg is the compiled filter (8 bytes per instruction), when
	// the owner compiled it; Config.Seccomp is then not sent.
	SeccompProg []byte `json:"seccompProg,omitempty"`
	// Trace is the file the init appends its timeline to (BERTH_TRACE of
	// the owner), "" for none.
	Trace string `json:"trace,omitempty"`
}

type cgroupMount struct {
	Dir     string `json:"dir"`
	Type    string `json:"type"`
	Options string `json:"options"`
}

// A message is sent inline, in one packet, up to maxInline bytes (the
// size of a conn's receive buffer, so a packet is read in one recvmsg). A
// bigger one (a config with a large environment) goes in a memfd attached
// as the last fd of an "indirect" packet, up to maxMessage bytes: the
// kernel caps a packet at about the socket's send buffer (208 KiB by
// default), far below what execve accepts (ARG_MAX, 2 MiB and more).
const (
	maxInline  = 16 << 10
	maxMessage = 64 << 20
)

// opIndirect marks a packet whose message is in its last fd.
const opIndirect = "indirect"

// errBadMessage is a packet that is not a message (the connection is fine).
var errBadMessage = errors.New("bad control message")

// conn is one end of a control connection: a non-blocking SOCK_SEQPACKET
// socket served by the runtime's poller through an *os.File, so reads honour
// deadlines and Close. (Package net would do the same, but importing it would
// delay the init hook: net is initialised late in every program.)
type conn struct {
	// wire sends in the binary form of wire.go rather than JSON: set on
	// both ends of the connection between an owner and the init it spawned
	// (the same binary), whose messages an init would otherwise be the
	// first to encode or decode with encoding/json, cold.
	wire bool
	f    *os.File
	rc   syscall.RawConn
	wmu  sync.Mutex
	buf  []byte
	oob  []byte
}

// connFromFile turns a socket fd into a conn; f is closed.
func connFromFile(f *os.File) (*conn, error) {
	nf, err := pollable(f, "berth-ctl")
	if err != nil {
		return nil, err
	}
	rc, err := nf.SyscallConn()
	if err != nil {
		nf.Close()
		return nil, err
	}
	return &conn{f: nf, rc: rc, buf: make([]byte, maxInline), oob: make([]byte, unix.CmsgSpace(8*4))}, nil
}

// pollable returns a non-blocking duplicate of f's fd, which os registers
// with the runtime's poller; f is closed.
func pollable(f *os.File, name string) (*os.File, error) {
	defer f.Close()
	sc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	nfd := -1
	cerr := sc.Control(func(fd uintptr) {
		nfd, err = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	})
	if cerr != nil {
		return nil, cerr
	}
	if err != nil {
		return nil, os.NewSyscallError("dup", err)
	}
	if err := unix.SetNonblock(nfd, true); err != nil {
		unix.Close(nfd)
		return nil, os.NewSyscallError("fcntl", err)
	}
	return os.NewFile(uintptr(nfd), name), nil
}

// socketPair returns two connected SOCK_SEQPACKET sockets, close-on-exec.
func socketPair() (*os.File, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, os.NewSyscallError("socketpair", err)
	}
	return os.NewFile(uintptr(fds[0]), "berth-ctl"), os.NewFile(uintptr(fds[1]), "berth-ctl"), nil
}

// listenControl binds a SOCK_SEQPACKET socket at path and listens on it. The
// returned file is blocking, ready to be handed to the init.
func listenControl(path string) (*os.File, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "bind", Path: path, Err: err}
	}
	if err := unix.Listen(fd, 128); err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("listen", err)
	}
	return os.NewFile(uintptr(fd), path), nil
}

// dialControl connects to the control socket at path. A full backlog
// (EAGAIN) is retried until ctx is done.
func dialControl(ctx context.Context, path string) (*conn, error) {
	for {
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
		if err != nil {
			return nil, os.NewSyscallError("socket", err)
		}
		err = unix.Connect(fd, &unix.SockaddrUnix{Name: path})
		if err == nil {
			return connFromFile(os.NewFile(uintptr(fd), path))
		}
		unix.Close(fd)
		if err != unix.EAGAIN {
			return nil, &os.PathError{Op: "dial", Path: path, Err: err}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}

// acceptControl waits for a connection on the listening socket l (a
// pollable file) and returns it. It returns os.ErrClosed once l is closed.
func acceptControl(l syscall.RawConn) (*conn, error) {
	nfd := -1
	var aerr error
	err := l.Read(func(fd uintptr) bool {
		nfd, _, aerr = unix.Accept4(int(fd), unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK)
		return aerr != unix.EAGAIN
	})
	if err != nil {
		return nil, err
	}
	if aerr != nil {
		return nil, os.NewSyscallError("accept", aerr)
	}
	return connFromFile(os.NewFile(uintptr(nfd), "berth-ctl"))
}

// send sends m, a *message or a *reply.
func (c *conn) send(m any, files ...*os.File) error {
	b, err := encodeMessage(m, c.wire)
	if err != nil {
		return err
	}
	if len(b) > maxInline {
		if len(b) > maxMessage {
			return fmt.Errorf("control message of %d bytes: larger than %d: %w", len(b), maxMessage, errdefs.ErrInvalid)
		}
		mf, err := messageFile(b)
		if err != nil {
			return err
		}
		defer mf.Close()
		b = []byte(`{"op":"` + opIndirect + `"}`)
		files = append(files[:len(files):len(files)], mf)
	}
	var oob []byte
	if len(files) > 0 {
		fds := make([]int, len(files))
		for i, f := range files {
			fds[i] = int(f.Fd())
		}
		oob = unix.UnixRights(fds...)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	var werr error
	err = c.rc.Write(func(fd uintptr) bool {
		werr = unix.Sendmsg(int(fd), b, oob, nil, 0)
		return werr != unix.EAGAIN
	})
	if err != nil {
		return err
	}
	if werr != nil {
		return os.NewSyscallError("sendmsg", werr)
	}
	return nil
}

// recv reads one message and the files attached to it. It returns io.EOF
// when the other end is closed.
func (c *conn) recv() (*message, []*os.File, error) {
	var n, oobn, flags int
	var rerr error
	err := c.rc.Read(func(fd uintptr) bool {
		// MSG_CMSG_CLOEXEC: no fork may inherit a received fd.
		n, oobn, flags, _, rerr = unix.Recvmsg(int(fd), c.buf, c.oob, unix.MSG_CMSG_CLOEXEC)
		return rerr != unix.EAGAIN
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		return nil, nil, err
	}
	var files []*os.File
	if oobn > 0 {
		scms, perr := unix.ParseSocketControlMessage(c.oob[:oobn])
		if perr != nil {
			return nil, nil, perr
		}
		for _, scm := range scms {
			fds, ferr := unix.ParseUnixRights(&scm)
			if ferr != nil {
				continue
			}
			for _, fd := range fds {
				files = append(files, os.NewFile(uintptr(fd), "berth-fd"))
			}
		}
	}
	if n == 0 && oobn == 0 {
		return nil, nil, io.EOF
	}
	if flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 {
		closeFiles(files)
		return nil, nil, fmt.Errorf("%w: truncated (%d bytes)", errBadMessage, n)
	}
	m := new(message)
	if err := decodeMessage(c.buf[:n], m); err != nil {
		closeFiles(files)
		return nil, nil, fmt.Errorf("%w: %w", errBadMessage, err)
	}
	if m.Op == opIndirect {
		return readIndirect(files)
	}
	return m, files, nil
}

// encodeMessage encodes m, a *message or a *reply, as JSON or, with wire,
// in the binary form of wire.go (a reply as the message it is read as).
func encodeMessage(m any, wire bool) ([]byte, error) {
	if !wire {
		return json.Marshal(m)
	}
	switch m := m.(type) {
	case *message:
		return marshalWire(m)
	case *reply:
		return marshalWire(&message{Op: m.Op, Pid: m.Pid, Status: m.Status, Err: m.Err, PidFD: m.PidFD, SelfFD: m.SelfFD, Master: m.Master})
	}
	return nil, fmt.Errorf("%w: cannot send a %T", errWire, m)
}

// decodeMessage decodes either form of encodeMessage.
func decodeMessage(b []byte, m *message) error {
	if len(b) > 0 && b[0] == wireMagic {
		return unmarshalWire(b, m)
	}
	return json.Unmarshal(b, m)
}

// messageFile returns a sealed memfd holding b, at offset 0.
func messageFile(b []byte) (*os.File, error) {
	fd, err := unix.MemfdCreate("berth-message", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, os.NewSyscallError("memfd_create", err)
	}
	f := os.NewFile(uintptr(fd), "berth-message")
	if _, err := f.Write(b); err != nil {
		f.Close()
		return nil, err
	}
	_, _ = unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SEAL|unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_WRITE)
	return f, nil
}

// readIndirect reads the message in the last of files (see opIndirect) and
// returns it with the other files.
func readIndirect(files []*os.File) (*message, []*os.File, error) {
	if len(files) == 0 {
		return nil, nil, fmt.Errorf("%w: indirect message without its file", errBadMessage)
	}
	mf := files[len(files)-1]
	files = files[:len(files)-1]
	defer mf.Close()
	b, err := io.ReadAll(io.NewSectionReader(mf, 0, maxMessage+1))
	if err == nil && len(b) > maxMessage {
		err = fmt.Errorf("larger than %d bytes", maxMessage)
	}
	m := new(message)
	if err == nil {
		err = decodeMessage(b, m)
	}
	if err != nil {
		closeFiles(files)
		return nil, nil, fmt.Errorf("%w: indirect: %w", errBadMessage, err)
	}
	return m, files, nil
}

func (c *conn) Close() error { return c.f.Close() }

// setReadDeadline bounds the next reads; the zero time removes the bound.
func (c *conn) setReadDeadline(t time.Time) { _ = c.f.SetReadDeadline(t) }

func closeFiles(fs []*os.File) {
	for _, f := range fs {
		if f != nil {
			f.Close()
		}
	}
}
