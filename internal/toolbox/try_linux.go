package toolbox

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// An attempt makes one privileged operation and returns its error.
type attempt struct {
	usage string
	run   func(args []string) error
}

func arg(args []string, i int, def string) string {
	if i < len(args) {
		return args[i]
	}
	return def
}

func unshareAttempt(flag uintptr) attempt {
	return attempt{"", func([]string) error {
		return inChild(unix.SYS_UNSHARE, flag, 0, 0)
	}}
}

func attempts() map[string]attempt {
	return map[string]attempt{
		// mount a tmpfs on a fresh directory (TARGET, default under /tmp),
		// unmounting it again on success.
		"mount": {"[TARGET]", func(args []string) error {
			target := arg(args, 0, "")
			if target == "" {
				d, err := os.MkdirTemp("", "try-mount-")
				if err != nil {
					return err
				}
				defer os.Remove(d)
				target = d
			}
			if err := unix.Mount("tmpfs", target, "tmpfs", 0, "size=64k"); err != nil {
				return err
			}
			return unix.Unmount(target, unix.MNT_DETACH)
		}},
		"umount": {"[PATH] (default /proc)", func(args []string) error {
			return unix.Unmount(arg(args, 0, "/proc"), 0)
		}},
		"keyctl": {"", func([]string) error {
			_, err := unix.KeyctlInt(unix.KEYCTL_GET_KEYRING_ID, unix.KEY_SPEC_SESSION_KEYRING, 0, 0, 0)
			return err
		}},
		"unshare-user":   unshareAttempt(unix.CLONE_NEWUSER),
		"unshare-mnt":    unshareAttempt(unix.CLONE_NEWNS),
		"unshare-net":    unshareAttempt(unix.CLONE_NEWNET),
		"unshare-pid":    unshareAttempt(unix.CLONE_NEWPID),
		"unshare-uts":    unshareAttempt(unix.CLONE_NEWUTS),
		"unshare-ipc":    unshareAttempt(unix.CLONE_NEWIPC),
		"unshare-cgroup": unshareAttempt(unix.CLONE_NEWCGROUP),
		// mknod a character device (default 1:3, /dev/null's numbers) at
		// PATH (default under /tmp), removing it on success.
		"mknod": {"[PATH [MAJOR MINOR]]", func(args []string) error {
			path := arg(args, 0, fmt.Sprintf("/tmp/.try-mknod-%d", os.Getpid()))
			maj, _ := strconv.Atoi(arg(args, 1, "1"))
			mnr, _ := strconv.Atoi(arg(args, 2, "3"))
			if err := unix.Mknod(path, unix.S_IFCHR|0o600, int(unix.Mkdev(uint32(maj), uint32(mnr)))); err != nil {
				return err
			}
			return os.Remove(path)
		}},
		// mknod a device (default b 7 0, /dev/loop0's numbers) under /tmp
		// and open it read-write, removing it after: with CAP_MKNOD (in
		// Docker's default set) the node is made, and the device cgroup
		// must refuse the open with EPERM.
		"mknod-open": {"[c|b MAJOR MINOR]", func(args []string) error {
			kind := uint32(unix.S_IFBLK)
			if arg(args, 0, "b") == "c" {
				kind = unix.S_IFCHR
			}
			maj, _ := strconv.Atoi(arg(args, 1, "7"))
			mnr, _ := strconv.Atoi(arg(args, 2, "0"))
			path := fmt.Sprintf("/tmp/.try-mknod-open-%d", os.Getpid())
			if err := unix.Mknod(path, kind|0o600, int(unix.Mkdev(uint32(maj), uint32(mnr)))); err != nil {
				return err
			}
			defer os.Remove(path)
			return tryOpen([]string{path}, unix.O_RDWR)
		}},
		"open-rw": {"PATH", func(args []string) error {
			return tryOpen(args, unix.O_RDWR)
		}},
		"open-ro": {"PATH", func(args []string) error {
			return tryOpen(args, unix.O_RDONLY)
		}},
		"open-wo": {"PATH", func(args []string) error {
			return tryOpen(args, unix.O_WRONLY)
		}},
		// ptrace-attach PID (default 1) with PTRACE_SEIZE, which does not
		// stop it; the kernel detaches when this process exits.
		"ptrace-pid": {"[PID]", func(args []string) error {
			pid, err := strconv.Atoi(arg(args, 0, "1"))
			if err != nil {
				return err
			}
			runtime.LockOSThread()
			return unix.PtraceSeize(pid)
		}},
		"init_module": {"", func([]string) error {
			return unix.InitModule(nil, "")
		}},
		"sethostname": {"[NAME]", func(args []string) error {
			return unix.Sethostname([]byte(arg(args, 0, "try-hostname")))
		}},
		// lower the hard RLIMIT_NOFILE by one, then try to raise it back:
		// raising a hard limit needs CAP_SYS_RESOURCE.
		"setrlimit-raise": {"", func([]string) error {
			var l unix.Rlimit
			if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &l); err != nil {
				return err
			}
			hard := l.Max
			low := unix.Rlimit{Cur: min(l.Cur, hard-1), Max: hard - 1}
			if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
				return fmt.Errorf("lowering: %s", errnoName(err))
			}
			return unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: low.Cur, Max: hard})
		}},
		// chroot (in a child, so this process keeps its root).
		"chroot": {"[DIR] (default /)", func(args []string) error {
			p, keep := cstring(arg(args, 0, "/"))
			err := inChild(unix.SYS_CHROOT, p, 0, 0)
			runtime.KeepAlive(keep)
			return err
		}},
		// the classic escape from a chroot: chroot into a fresh directory,
		// fchdir back out of it, climb with chdir("..") and chroot("."),
		// then open PATH read-only. In a container whose root is a
		// pivot_root'ed mount namespace there is nothing above the root to
		// climb to, so PATH is looked up in the container again. The
		// process's root changes for good, which a one-shot applet can
		// afford (and a multi-threaded Go process shares its root among
		// its threads, so no child is needed).
		"chroot-escape": {"PATH", func(args []string) error {
			if len(args) < 1 {
				return fmt.Errorf("usage: try chroot-escape PATH")
			}
			d, err := os.MkdirTemp("", "try-chroot-")
			if err != nil {
				return err
			}
			top, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if err != nil {
				os.Remove(d)
				return err
			}
			defer unix.Close(top)
			err = unix.Chroot(d)
			// d is outside the new root: remove it through the old one.
			_ = unix.Unlinkat(top, strings.TrimPrefix(d, "/"), unix.AT_REMOVEDIR)
			if err != nil {
				return err
			}
			if err := unix.Fchdir(top); err != nil {
				return err
			}
			for range 64 {
				if err := unix.Chdir(".."); err != nil {
					return err
				}
			}
			if err := unix.Chroot("."); err != nil {
				return err
			}
			return tryOpen(args, unix.O_RDONLY)
		}},
		// the "shocker" escape: get a file handle for PATH (default /) and
		// open it by handle, which bypasses path lookup and needs
		// CAP_DAC_READ_SEARCH; with it, guessed handles reach any inode of
		// the file system, outside the container's root too.
		"open_by_handle_at": {"[PATH] (default /)", func(args []string) error {
			path := arg(args, 0, "/")
			h, _, err := unix.NameToHandleAt(unix.AT_FDCWD, path, 0)
			if err != nil {
				return fmt.Errorf("name_to_handle_at: %s", errnoName(err))
			}
			mfd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
			if err != nil {
				return err
			}
			defer unix.Close(mfd)
			fd, err := unix.OpenByHandleAt(mfd, h, unix.O_RDONLY|unix.O_CLOEXEC)
			if err == nil {
				unix.Close(fd)
			}
			return err
		}},
		"setuid-root": {"", func([]string) error {
			return unix.Setuid(0)
		}},
		"chown": {"PATH [UID [GID]]", func(args []string) error {
			if len(args) < 1 {
				return fmt.Errorf("usage: try chown PATH [UID [GID]]")
			}
			uid, _ := strconv.Atoi(arg(args, 1, "1234"))
			gid, _ := strconv.Atoi(arg(args, 2, strconv.Itoa(uid)))
			return unix.Lchown(args[0], uid, gid)
		}},
		"raw-socket": {"", func([]string) error {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_ICMP)
			if err == nil {
				unix.Close(fd)
			}
			return err
		}},
		// set the flags of lo to what they are: needs CAP_NET_ADMIN.
		"net-admin": {"", func([]string) error {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return err
			}
			defer unix.Close(fd)
			ifr, err := unix.NewIfreq("lo")
			if err != nil {
				return err
			}
			if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
				return err
			}
			return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
		}},
		"bind": {"[ADDR] (default :80)", func(args []string) error {
			ln, err := net.Listen("tcp", arg(args, 0, ":80"))
			if err == nil {
				ln.Close()
			}
			return err
		}},
		// set the clock to the time it is: needs CAP_SYS_TIME.
		"settime": {"", func([]string) error {
			ts := unix.NsecToTimespec(time.Now().UnixNano())
			return unix.ClockSettime(unix.CLOCK_REALTIME, &ts)
		}},
		"swapon": {"", func([]string) error {
			p, keep := cstring("/nonexistent-swap")
			_, _, e := unix.Syscall(unix.SYS_SWAPON, p, 0, 0)
			runtime.KeepAlive(keep)
			return errOrNil(e)
		}},
		"syslog": {"", func([]string) error {
			_, err := unix.Klogctl(unix.SYSLOG_ACTION_SIZE_BUFFER, nil)
			return err
		}},
		"bpf": {"", func([]string) error {
			var attr [64]byte
			fd, _, e := unix.Syscall(unix.SYS_BPF, unix.BPF_MAP_CREATE, uintptr(unsafe.Pointer(&attr[0])), unsafe.Sizeof(attr))
			if e == 0 {
				unix.Close(int(fd))
			}
			return errOrNil(e)
		}},
		"perf_event_open": {"", func([]string) error {
			attr := unix.PerfEventAttr{Type: unix.PERF_TYPE_SOFTWARE, Config: unix.PERF_COUNT_SW_CPU_CLOCK}
			attr.Size = uint32(unsafe.Sizeof(attr))
			fd, err := unix.PerfEventOpen(&attr, 0, -1, -1, unix.PERF_FLAG_FD_CLOEXEC)
			if err == nil {
				unix.Close(fd)
			}
			return err
		}},
		"userfaultfd": {"", func([]string) error {
			fd, _, e := unix.Syscall(unix.SYS_USERFAULTFD, unix.O_CLOEXEC, 0, 0)
			if e == 0 {
				unix.Close(int(fd))
			}
			return errOrNil(e)
		}},
		"io_uring": {"", func([]string) error {
			var params [120]byte
			fd, _, e := unix.Syscall(unix.SYS_IO_URING_SETUP, 1, uintptr(unsafe.Pointer(&params[0])), 0)
			if e == 0 {
				unix.Close(int(fd))
			}
			return errOrNil(e)
		}},
		"acct": {"", func([]string) error {
			return unix.Acct("")
		}},
	}
}

func errOrNil(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

func tryOpen(args []string, flags int) error {
	if len(args) < 1 {
		return fmt.Errorf("usage: try open-* PATH")
	}
	fd, err := unix.Open(args[0], flags|unix.O_CLOEXEC|unix.O_NOCTTY|unix.O_NONBLOCK, 0)
	if err == nil {
		unix.Close(fd)
	}
	return err
}

// tryApplet attempts one named privileged operation and prints "ok" (exit
// 0) or the errno name ("EPERM") or other error text (exit 1).
func tryApplet(e *env, args []string) int {
	table := attempts()
	if len(args) < 2 {
		var names []string
		for n, a := range table {
			names = append(names, strings.TrimSpace(n+" "+a.usage))
		}
		sort.Strings(names)
		fmt.Fprintf(e.stderr, "usage: try NAME [ARG...]\n  %s\n", strings.Join(names, "\n  "))
		return 2
	}
	a, ok := table[args[1]]
	if !ok {
		fmt.Fprintf(e.stderr, "try: unknown operation %q\n", args[1])
		return 2
	}
	if err := a.run(args[2:]); err != nil {
		fmt.Fprintln(e.stdout, errnoName(err))
		return 1
	}
	fmt.Fprintln(e.stdout, "ok")
	return 0
}
