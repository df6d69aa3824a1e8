package toolbox

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// An applet runs with its own argv (args[0] is the applet name) and returns
// the exit status.
type applet func(e *env, args []string) int

// env is what an applet talks to; tests of the package run applets as real
// processes, so it is just the process's stdio.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

func (e *env) fail(name string, err error) int {
	fmt.Fprintf(e.stderr, "%s: %v\n", name, err)
	return 1
}

func (e *env) usage(name, text string) int {
	fmt.Fprintf(e.stderr, "usage: %s %s\n", name, text)
	return 2
}

func table() map[string]applet {
	return map[string]applet{
		"addrs":       addrsApplet,
		"caps":        capsApplet,
		"cat":         catApplet,
		"cgroup":      cgroupApplet,
		"connect":     connectApplet,
		"echo":        echoApplet,
		"echo-err":    echoErrApplet,
		"env":         envApplet,
		"exit":        exitApplet,
		"false":       func(*env, []string) int { return 1 },
		"fetch":       fetchApplet,
		"forkbomb":    forkbombApplet,
		"hostname":    hostnameApplet,
		"http":        httpApplet,
		"id":          idApplet,
		"ignore-term": ignoreTermApplet,
		"isatty":      isattyApplet,
		"kill":        killApplet,
		"ls":          lsApplet,
		"memhog":      memhogApplet,
		"mkdir":       mkdirApplet,
		"mounts":      mountsApplet,
		"orphan":      orphanApplet,
		"ps":          psApplet,
		"pwd":         pwdApplet,
		"resolve":     resolveApplet,
		"rlimits":     rlimitsApplet,
		"rm":          rmApplet,
		"sha256sum":   sha256Applet,
		"signals":     signalsApplet,
		"sleep":       sleepApplet,
		"spew":        spewApplet,
		"spin":        spinApplet,
		"stat":        statApplet,
		"tcp-echo":    tcpEchoApplet,
		"touch":       touchApplet,
		"true":        func(*env, []string) int { return 0 },
		"try":         tryApplet,
		"udp-echo":    udpEchoApplet,
		"umask":       umaskApplet,
		"write":       writeApplet,
	}
}

// Main runs the applet named by filepath.Base(args[0]), or by args[1] when
// args[0] is "toolbox", with the process's stdio, and returns its exit
// status: 127 for an unknown applet, 2 for a usage error.
func Main(args []string) int {
	e := &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}
	if len(args) == 0 {
		return e.usage("toolbox", "APPLET [ARG...]")
	}
	name := filepath.Base(args[0])
	if name == "toolbox" {
		if len(args) < 2 {
			fmt.Fprintf(e.stderr, "usage: toolbox APPLET [ARG...]\napplets: %s\n", strings.Join(applets, " "))
			return 2
		}
		args = args[1:]
		name = args[0]
	}
	a, ok := table()[name]
	if !ok {
		fmt.Fprintf(e.stderr, "toolbox: unknown applet %q\n", name)
		return 127
	}
	return a(e, append([]string{name}, args[1:]...))
}

// errnoName names err's errno ("EPERM"), or returns err's text.
func errnoName(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		if n := unix.ErrnoName(errno); n != "" {
			return n
		}
		return fmt.Sprintf("errno %d", int(errno))
	}
	return err.Error()
}

func echoApplet(e *env, args []string) int {
	return echoTo(e.stdout, args[1:])
}

func echoErrApplet(e *env, args []string) int {
	return echoTo(e.stderr, args[1:])
}

func echoTo(w io.Writer, args []string) int {
	nl := "\n"
	if len(args) > 0 && args[0] == "-n" {
		nl, args = "", args[1:]
	}
	fmt.Fprint(w, strings.Join(args, " ")+nl)
	return 0
}

func catApplet(e *env, args []string) int {
	files := args[1:]
	if len(files) == 0 {
		files = []string{"-"}
	}
	code := 0
	for _, f := range files {
		if f == "-" {
			if _, err := io.Copy(e.stdout, e.stdin); err != nil {
				code = e.fail("cat", err)
			}
			continue
		}
		if err := catFile(e.stdout, f); err != nil {
			code = e.fail("cat", err)
		}
	}
	return code
}

func catFile(w io.Writer, name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}

// parseSeconds reads "1.5", "inf" or a Go duration ("200ms").
func parseSeconds(s string) (time.Duration, error) {
	if s == "inf" || s == "infinity" {
		return time.Duration(math.MaxInt64), nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && f >= 0 {
		return time.Duration(f * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("bad duration %q", s)
	}
	return d, nil
}

func sleepApplet(e *env, args []string) int {
	if len(args) != 2 {
		return e.usage("sleep", "SECONDS")
	}
	d, err := parseSeconds(args[1])
	if err != nil {
		return e.fail("sleep", err)
	}
	time.Sleep(d)
	return 0
}

func exitApplet(e *env, args []string) int {
	if len(args) != 2 {
		return e.usage("exit", "N")
	}
	n, err := strconv.Atoi(args[1])
	if err != nil {
		return e.fail("exit", err)
	}
	return n & 0xff
}

func envApplet(e *env, args []string) int {
	for _, kv := range os.Environ() {
		fmt.Fprintln(e.stdout, kv)
	}
	return 0
}

func pwdApplet(e *env, args []string) int {
	wd, err := os.Getwd()
	if err != nil {
		return e.fail("pwd", err)
	}
	fmt.Fprintln(e.stdout, wd)
	return 0
}

func hostnameApplet(e *env, args []string) int {
	h, err := os.Hostname()
	if err != nil {
		return e.fail("hostname", err)
	}
	fmt.Fprintln(e.stdout, h)
	return 0
}

// idApplet prints like coreutils id; -u, -g, -G print numbers, with -n names.
func idApplet(e *env, args []string) int {
	var only byte
	names := false
	for _, a := range args[1:] {
		if !strings.HasPrefix(a, "-") || len(a) < 2 {
			return e.usage("id", "[-u|-g|-G] [-n]")
		}
		for _, c := range a[1:] {
			switch c {
			case 'u', 'g', 'G':
				only = byte(c)
			case 'n':
				names = true
			default:
				return e.usage("id", "[-u|-g|-G] [-n]")
			}
		}
	}
	users := readDB("/etc/passwd")
	groups := readDB("/etc/group")
	uid, euid := os.Getuid(), os.Geteuid()
	gid, egid := os.Getgid(), os.Getegid()
	sup, _ := os.Getgroups()
	all := []int{egid}
	for _, g := range sup {
		if !slices.Contains(all, g) {
			all = append(all, g)
		}
	}
	one := func(db map[int]string, n int) string {
		if names {
			if s, ok := db[n]; ok {
				return s
			}
		}
		return strconv.Itoa(n)
	}
	both := func(db map[int]string, n int) string {
		if s, ok := db[n]; ok {
			return fmt.Sprintf("%d(%s)", n, s)
		}
		return strconv.Itoa(n)
	}
	switch only {
	case 'u':
		fmt.Fprintln(e.stdout, one(users, euid))
		return 0
	case 'g':
		fmt.Fprintln(e.stdout, one(groups, egid))
		return 0
	case 'G':
		var s []string
		for _, g := range all {
			s = append(s, one(groups, g))
		}
		fmt.Fprintln(e.stdout, strings.Join(s, " "))
		return 0
	}
	out := fmt.Sprintf("uid=%s gid=%s", both(users, uid), both(groups, gid))
	if euid != uid {
		out += " euid=" + both(users, euid)
	}
	if egid != gid {
		out += " egid=" + both(groups, egid)
	}
	var s []string
	for _, g := range all {
		s = append(s, both(groups, g))
	}
	fmt.Fprintf(e.stdout, "%s groups=%s\n", out, strings.Join(s, ","))
	return 0
}

// readDB maps ids to names from a passwd or group file (name:x:id:...).
func readDB(path string) map[int]string {
	m := map[int]string{}
	data, err := os.ReadFile(path)
	if err != nil {
		return m
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		f := strings.Split(line, ":")
		if len(f) < 3 || strings.HasPrefix(line, "#") {
			continue
		}
		if n, err := strconv.Atoi(f[2]); err == nil {
			if _, dup := m[n]; !dup {
				m[n] = f[0]
			}
		}
	}
	return m
}

// lsApplet lists directories (sorted, one name a line); -a shows dot files,
// -l prints "MODE UID GID SIZE NAME[ -> TARGET]".
func lsApplet(e *env, args []string) int {
	long, all := false, false
	var paths []string
	for _, a := range args[1:] {
		if strings.HasPrefix(a, "-") && len(a) > 1 {
			for _, c := range a[1:] {
				switch c {
				case 'l':
					long = true
				case 'a':
					all = true
				default:
					return e.usage("ls", "[-la] [PATH...]")
				}
			}
			continue
		}
		paths = append(paths, a)
	}
	if len(paths) == 0 {
		paths = []string{"."}
	}
	code := 0
	for i, p := range paths {
		st, err := os.Lstat(p)
		if err != nil {
			code = e.fail("ls", err)
			continue
		}
		if !st.IsDir() {
			lsEntry(e.stdout, filepath.Dir(p), p, long)
			continue
		}
		if len(paths) > 1 {
			if i > 0 {
				fmt.Fprintln(e.stdout)
			}
			fmt.Fprintf(e.stdout, "%s:\n", p)
		}
		ents, err := os.ReadDir(p)
		if err != nil {
			code = e.fail("ls", err)
			continue
		}
		for _, d := range ents {
			if !all && strings.HasPrefix(d.Name(), ".") {
				continue
			}
			lsEntry(e.stdout, p, d.Name(), long)
		}
	}
	return code
}

func lsEntry(w io.Writer, dir, name string, long bool) {
	if !long {
		fmt.Fprintln(w, name)
		return
	}
	full := name
	if !filepath.IsAbs(name) {
		full = filepath.Join(dir, name)
	}
	var st unix.Stat_t
	if err := unix.Lstat(full, &st); err != nil {
		fmt.Fprintf(w, "? ? ? ? %s\n", name)
		return
	}
	line := fmt.Sprintf("%s %d %d %d %s", modeString(st.Mode), st.Uid, st.Gid, st.Size, name)
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		t, _ := os.Readlink(full)
		line += " -> " + t
	}
	fmt.Fprintln(w, line)
}

func capsApplet(e *env, args []string) int {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return e.fail("caps", err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		k, _, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch k {
		case "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp":
			fmt.Fprintln(e.stdout, line)
		}
	}
	return 0
}

func mountsApplet(e *env, args []string) int {
	if err := catFile(e.stdout, "/proc/self/mountinfo"); err != nil {
		return e.fail("mounts", err)
	}
	return 0
}

func cgroupApplet(e *env, args []string) int {
	if err := catFile(e.stdout, "/proc/self/cgroup"); err != nil {
		return e.fail("cgroup", err)
	}
	return 0
}

// writeApplet writes the words of TEXT, joined by spaces and without a
// newline, to FILE (created 0644, truncated; -a appends).
func writeApplet(e *env, args []string) int {
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	args = args[1:]
	if len(args) > 0 && args[0] == "-a" {
		flags = os.O_WRONLY | os.O_CREATE | os.O_APPEND
		args = args[1:]
	}
	if len(args) < 1 {
		return e.usage("write", "[-a] FILE [TEXT...]")
	}
	f, err := os.OpenFile(args[0], flags, 0o644)
	if err != nil {
		return e.fail("write", err)
	}
	if _, err := f.WriteString(strings.Join(args[1:], " ")); err != nil {
		f.Close()
		return e.fail("write", err)
	}
	if err := f.Close(); err != nil {
		return e.fail("write", err)
	}
	return 0
}

func mkdirApplet(e *env, args []string) int {
	parents := false
	mode := os.FileMode(0o755)
	var dirs []string
	a := args[1:]
	for i := 0; i < len(a); i++ {
		switch {
		case a[i] == "-p":
			parents = true
		case a[i] == "-m" && i+1 < len(a):
			m, err := strconv.ParseUint(a[i+1], 8, 32)
			if err != nil {
				return e.fail("mkdir", err)
			}
			mode = os.FileMode(m)
			i++
		default:
			dirs = append(dirs, a[i])
		}
	}
	if len(dirs) == 0 {
		return e.usage("mkdir", "[-p] [-m MODE] DIR...")
	}
	code := 0
	for _, d := range dirs {
		var err error
		if parents {
			err = os.MkdirAll(d, mode)
		} else {
			err = os.Mkdir(d, mode)
		}
		if err == nil && mode&^0o777 == 0 {
			err = os.Chmod(d, mode) // exact mode, whatever the umask
		}
		if err != nil {
			code = e.fail("mkdir", err)
		}
	}
	return code
}

func rmApplet(e *env, args []string) int {
	recursive, force := false, false
	var paths []string
	for _, a := range args[1:] {
		if strings.HasPrefix(a, "-") && len(a) > 1 {
			for _, c := range a[1:] {
				switch c {
				case 'r', 'R':
					recursive = true
				case 'f':
					force = true
				default:
					return e.usage("rm", "[-rf] PATH...")
				}
			}
			continue
		}
		paths = append(paths, a)
	}
	code := 0
	for _, p := range paths {
		var err error
		if recursive {
			if _, err = os.Lstat(p); err == nil {
				err = os.RemoveAll(p)
			}
		} else {
			err = os.Remove(p)
		}
		if err != nil && !(force && errors.Is(err, os.ErrNotExist)) {
			code = e.fail("rm", err)
		}
	}
	return code
}

// statApplet prints "type=T mode=0644 uid=U gid=G size=N" (plus
// "rdev=MAJ:MIN" for devices, "link=TARGET" for symlinks) without following
// symlinks; with several paths each line starts with "PATH: ".
func statApplet(e *env, args []string) int {
	if len(args) < 2 {
		return e.usage("stat", "PATH...")
	}
	code := 0
	for _, p := range args[1:] {
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			code = e.fail("stat", &os.PathError{Op: "lstat", Path: p, Err: err})
			continue
		}
		typ := "unknown"
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			typ = "file"
		case unix.S_IFDIR:
			typ = "dir"
		case unix.S_IFLNK:
			typ = "symlink"
		case unix.S_IFCHR:
			typ = "char"
		case unix.S_IFBLK:
			typ = "block"
		case unix.S_IFIFO:
			typ = "fifo"
		case unix.S_IFSOCK:
			typ = "socket"
		}
		line := fmt.Sprintf("type=%s mode=%04o uid=%d gid=%d size=%d", typ, st.Mode&0o7777, st.Uid, st.Gid, st.Size)
		switch typ {
		case "char", "block":
			line += fmt.Sprintf(" rdev=%d:%d", unix.Major(uint64(st.Rdev)), unix.Minor(uint64(st.Rdev)))
		case "symlink":
			t, _ := os.Readlink(p)
			line += " link=" + t
		}
		if len(args) > 2 {
			line = p + ": " + line
		}
		fmt.Fprintln(e.stdout, line)
	}
	return code
}

func touchApplet(e *env, args []string) int {
	if len(args) < 2 {
		return e.usage("touch", "FILE...")
	}
	code := 0
	now := time.Now()
	for _, p := range args[1:] {
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE, 0o644)
		if err == nil {
			f.Close()
			err = os.Chtimes(p, now, now)
		}
		if err != nil {
			code = e.fail("touch", err)
		}
	}
	return code
}

func sha256Applet(e *env, args []string) int {
	files := args[1:]
	if len(files) == 0 {
		files = []string{"-"}
	}
	code := 0
	for _, name := range files {
		h := sha256.New()
		var err error
		if name == "-" {
			_, err = io.Copy(h, e.stdin)
		} else {
			err = catFile(h, name)
		}
		if err != nil {
			code = e.fail("sha256sum", err)
			continue
		}
		fmt.Fprintf(e.stdout, "%s  %s\n", hex.EncodeToString(h.Sum(nil)), name)
	}
	return code
}

// spewApplet writes N bytes of text (lines of 63 letters and a newline) to
// stdout, or with -err to stderr: load for log and stdio benchmarks.
func spewApplet(e *env, args []string) int {
	w := e.stdout
	a := args[1:]
	if len(a) > 0 && a[0] == "-err" {
		w, a = e.stderr, a[1:]
	}
	if len(a) != 1 {
		return e.usage("spew", "[-err] BYTES")
	}
	n, err := strconv.ParseInt(a[0], 10, 64)
	if err != nil || n < 0 {
		return e.usage("spew", "[-err] BYTES")
	}
	line := []byte(strings.Repeat("abcdefghijklmnopqrstuvwxyz", 3)[:63] + "\n")
	buf := bytesRepeat(line, 512)
	bw := bufio.NewWriterSize(w, 64<<10)
	for n > 0 {
		chunk := buf
		if int64(len(chunk)) > n {
			chunk = chunk[:n]
		}
		if _, err := bw.Write(chunk); err != nil {
			return e.fail("spew", err)
		}
		n -= int64(len(chunk))
	}
	if err := bw.Flush(); err != nil {
		return e.fail("spew", err)
	}
	return 0
}

func bytesRepeat(b []byte, n int) []byte {
	out := make([]byte, 0, len(b)*n)
	for range n {
		out = append(out, b...)
	}
	return out
}

func umaskApplet(e *env, args []string) int {
	m := unix.Umask(0)
	unix.Umask(m)
	fmt.Fprintf(e.stdout, "%04o\n", m)
	return 0
}

func isattyApplet(e *env, args []string) int {
	for i, name := range []string{"stdin", "stdout", "stderr"} {
		_, err := unix.IoctlGetTermios(i, unix.TCGETS)
		state := "tty"
		if err != nil {
			state = "notty"
		}
		line := name + "=" + state
		if err == nil {
			if ws, err := unix.IoctlGetWinsize(i, unix.TIOCGWINSZ); err == nil {
				line += fmt.Sprintf(" size=%dx%d", ws.Row, ws.Col)
			}
		}
		fmt.Fprintln(e.stdout, line)
	}
	return 0
}

var rlimitNames = []struct {
	name string
	res  int
}{
	{"AS", unix.RLIMIT_AS}, {"CORE", unix.RLIMIT_CORE}, {"CPU", unix.RLIMIT_CPU},
	{"DATA", unix.RLIMIT_DATA}, {"FSIZE", unix.RLIMIT_FSIZE}, {"MEMLOCK", unix.RLIMIT_MEMLOCK},
	{"NOFILE", unix.RLIMIT_NOFILE}, {"NPROC", unix.RLIMIT_NPROC}, {"RSS", unix.RLIMIT_RSS},
	{"STACK", unix.RLIMIT_STACK},
}

// rlimitsApplet prints "NAME SOFT HARD" for common limits ("unlimited" for
// RLIM_INFINITY).
func rlimitsApplet(e *env, args []string) int {
	f := func(v uint64) string {
		if v == unix.RLIM_INFINITY {
			return "unlimited"
		}
		return strconv.FormatUint(v, 10)
	}
	for _, r := range rlimitNames {
		var l unix.Rlimit
		if err := unix.Getrlimit(r.res, &l); err != nil {
			return e.fail("rlimits", err)
		}
		fmt.Fprintf(e.stdout, "%s %s %s\n", r.name, f(l.Cur), f(l.Max))
	}
	return 0
}

// modeString formats a st_mode like ls -l: "drwxr-xr-x", "-rwsr-xr-x",
// "drwxrwxrwt", "crw-rw-rw-".
func modeString(m uint32) string {
	b := []byte("?rwxrwxrwx")
	switch m & unix.S_IFMT {
	case unix.S_IFREG:
		b[0] = '-'
	case unix.S_IFDIR:
		b[0] = 'd'
	case unix.S_IFLNK:
		b[0] = 'l'
	case unix.S_IFCHR:
		b[0] = 'c'
	case unix.S_IFBLK:
		b[0] = 'b'
	case unix.S_IFIFO:
		b[0] = 'p'
	case unix.S_IFSOCK:
		b[0] = 's'
	}
	for i := range 9 {
		if m&(1<<(8-i)) == 0 {
			b[i+1] = '-'
		}
	}
	special := func(bit uint32, pos int, set, unset byte) {
		if m&bit != 0 {
			if b[pos] == '-' {
				b[pos] = unset
			} else {
				b[pos] = set
			}
		}
	}
	special(unix.S_ISUID, 3, 's', 'S')
	special(unix.S_ISGID, 6, 's', 'S')
	special(unix.S_ISVTX, 9, 't', 'T')
	return string(b)
}
