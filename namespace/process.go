//go:build linux

package namespace

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// spawnSpec is a process ready to be started by the supervisor.
type spawnSpec struct {
	path  string
	argv  []string
	env   []string
	dir   string
	cred  *syscall.Credential
	files [3]*os.File // stdin, stdout, stderr in the child (the pty slave with a terminal)
	tty   bool
	// master is the pty master when tty.
	master *os.File
}

func (sp *spawnSpec) closeChildFiles() {
	seen := map[*os.File]bool{}
	for _, f := range sp.files {
		if f != nil && !seen[f] {
			seen[f] = true
			f.Close()
		}
	}
}

// prepare resolves user, environment, working directory and command of pc
// inside the container (after pivot_root). inherit gives the defaults for
// an exec'd process (the main process's config), nil for the main process.
func prepare(pc ProcessConfig, inherit *ProcessConfig) (*spawnSpec, error) {
	if len(pc.Args) == 0 {
		return nil, &SetupError{Step: "exec", Err: errors.New("no command"), Code: 125}
	}
	if inherit != nil {
		if pc.Env == nil {
			pc.Env = inherit.Env
		}
		if pc.User == "" {
			pc.User = inherit.User
			if len(pc.AdditionalGroups) == 0 {
				pc.AdditionalGroups = inherit.AdditionalGroups
			}
		}
		if pc.Cwd == "" {
			pc.Cwd = inherit.Cwd
		}
	}
	sp := &spawnSpec{argv: pc.Args, tty: pc.Terminal}

	u, err := lookupUser(pc.User, "/etc/passwd", "/etc/group")
	if err != nil {
		return nil, &SetupError{Step: "resolve user " + pc.User, Err: err, Code: 125}
	}
	if u.uid == 0 && u.home == "/" && pc.User == "" {
		u.home = "/root"
	}
	groups := u.sgids
	if len(pc.AdditionalGroups) > 0 {
		extra, err := lookupGroups(pc.AdditionalGroups, "/etc/group")
		if err != nil {
			return nil, &SetupError{Step: "resolve groups", Err: err, Code: 125}
		}
		groups = append(groups, extra...)
	}
	sp.cred = &syscall.Credential{Uid: uint32(u.uid), Gid: uint32(u.gid), Groups: make([]uint32, 0, len(groups))}
	for _, g := range groups {
		sp.cred.Groups = append(sp.cred.Groups, uint32(g))
	}

	env := append([]string(nil), pc.Env...)
	search := DefaultPath
	hasHome := false
	for _, kv := range env {
		if strings.HasPrefix(kv, "HOME=") {
			hasHome = true
		}
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			search = v
		}
	}
	if !hasHome {
		env = append(env, "HOME="+u.home)
	}
	sp.env = env

	sp.dir = pc.Cwd
	if sp.dir == "" {
		sp.dir = "/"
	}
	if !path.IsAbs(sp.dir) {
		sp.dir = "/" + sp.dir
	}
	if err := os.MkdirAll(sp.dir, 0o755); err != nil {
		return nil, &SetupError{Step: "create working directory " + sp.dir, Err: err, Code: 125}
	}

	sp.path, err = lookPath(pc.Args[0], search, sp.dir)
	if err != nil {
		return nil, err
	}
	return sp, nil
}

// lookPath finds the command like a shell does, in the colon-separated
// directories of search. Not found gives 127, found but not executable 126.
// Paths are the container's, always slash-separated: package path, not
// path/filepath, does their arithmetic.
func lookPath(name, search, dir string) (string, error) {
	if strings.Contains(name, "/") {
		p := name
		if !path.IsAbs(p) {
			p = path.Join(dir, p)
		}
		fi, err := os.Stat(p)
		if err != nil {
			return "", &SetupError{Step: "exec " + name, Err: err, Code: 127}
		}
		if fi.IsDir() || fi.Mode()&0o111 == 0 {
			return "", &SetupError{Step: "exec " + name, Err: &errnoMsg{msg: "permission denied", errno: unix.EACCES}, Code: 126}
		}
		return p, nil
	}
	var nonExec string
	var dirs []string
	if search != "" { // as filepath.SplitList: an empty PATH has no entries, not one ""
		dirs = strings.Split(search, ":")
	}
	for _, d := range dirs {
		if d == "" {
			d = "."
		}
		p := path.Join(d, name)
		if !path.IsAbs(p) {
			p = path.Join(dir, p)
		}
		fi, err := os.Stat(p)
		if err != nil || fi.IsDir() {
			continue
		}
		if fi.Mode()&0o111 == 0 {
			if nonExec == "" {
				nonExec = p
			}
			continue
		}
		return p, nil
	}
	if nonExec != "" {
		return "", &SetupError{Step: "exec " + name, Err: &errnoMsg{msg: nonExec + ": permission denied", errno: unix.EACCES}, Code: 126}
	}
	return "", &SetupError{Step: "exec " + name, Err: &errnoMsg{msg: fmt.Sprintf("%q: executable file not found in $PATH", name), errno: unix.ENOENT}, Code: 127}
}

func execErr(name string, err error) error {
	code := 126
	if errors.Is(err, unix.ENOENT) {
		code = 127
	}
	return &SetupError{Step: "exec " + name, Err: err, Code: code}
}

var rlimitNames = map[string]int{
	"CPU": unix.RLIMIT_CPU, "FSIZE": unix.RLIMIT_FSIZE, "DATA": unix.RLIMIT_DATA,
	"STACK": unix.RLIMIT_STACK, "CORE": unix.RLIMIT_CORE, "RSS": unix.RLIMIT_RSS,
	"NPROC": unix.RLIMIT_NPROC, "NOFILE": unix.RLIMIT_NOFILE, "MEMLOCK": unix.RLIMIT_MEMLOCK,
	"AS": unix.RLIMIT_AS, "LOCKS": unix.RLIMIT_LOCKS, "SIGPENDING": unix.RLIMIT_SIGPENDING,
	"MSGQUEUE": unix.RLIMIT_MSGQUEUE, "NICE": unix.RLIMIT_NICE, "RTPRIO": unix.RLIMIT_RTPRIO,
	"RTTIME": unix.RLIMIT_RTTIME,
}

func rlimitType(name string) (int, bool) {
	n, ok := rlimitNames[strings.TrimPrefix(strings.ToUpper(name), "RLIMIT_")]
	return n, ok
}

func setRlimits(rls []Rlimit) error {
	for _, rl := range rls {
		t, _ := rlimitType(rl.Type) // validated by Start
		// syscall.Setrlimit (not unix.Setrlimit): for RLIMIT_NOFILE it also
		// tells the Go runtime not to restore its startup limit in children.
		if err := syscall.Setrlimit(t, &syscall.Rlimit{Cur: rl.Soft, Max: rl.Hard}); err != nil {
			return &SetupError{Step: "setrlimit " + rl.Type, Err: err, Code: 125}
		}
	}
	return nil
}
