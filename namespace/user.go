//go:build linux

package namespace

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/berthrt/berth/errdefs"
)

// A process's user is resolved here, against the container's /etc/passwd
// and /etc/group, the way moby/sys/user's GetExecUserPath and
// GetAdditionalGroupsPath do it (and so runc and Docker): images are written
// against that behaviour, quirks included. This package does not import
// moby/sys/user because its init would delay the re-exec hook (see Cost in
// doc.go).

const (
	// maxID is the largest uid or gid a user spec may name, as in
	// moby/sys/user (the kernel allows up to 2^32-2).
	maxID = 1<<31 - 1
	// maxUserFileSize bounds what is read of a passwd or group file.
	maxUserFileSize = 10 << 20
	// maxGroupLine is the longest group line (member lists can be long);
	// passwd lines have bufio's default limit of 64 KiB.
	maxGroupLine = 1 << 20
)

// execUser is the identity a process runs with.
type execUser struct {
	uid, gid int
	sgids    []int // supplementary groups
	home     string
}

// passwdEntry is the part of an /etc/passwd line that a process needs.
type passwdEntry struct {
	name     string
	uid, gid int
	home     string
}

// groupEntry is an /etc/group line.
type groupEntry struct {
	name    string
	gid     int
	members []string
}

// lookupUser resolves spec ("", "name", "uid", and each of those followed
// by ":group" or ":gid") with the passwd and group files at passwdPath and
// groupPath:
//
//   - the user part matches the first passwd entry with that name, or that
//     uid when it is a number; "" matches uid 0. The entry gives uid, gid
//     and home. A number without an entry is used as is, as is "" (gid 0,
//     home "/"); a name without one is an error;
//   - an explicit group part replaces the entry's gid, a number without a
//     group entry is used as is; the process then has no supplementary
//     groups;
//   - without one, the supplementary groups are those that list the
//     matched entry's name as a member.
//
// A missing file, or one that is not a regular file, has no entries.
func lookupUser(spec, passwdPath, groupPath string) (execUser, error) {
	u := execUser{home: "/"}
	userPart, groupPart, _ := strings.Cut(spec, ":")
	var ua, ga idArg
	var err error
	if userPart != "" {
		if ua, err = parseIDArg(userPart); err != nil {
			return u, err
		}
	}
	if groupPart != "" {
		if ga, err = parseIDArg(groupPart); err != nil {
			return u, err
		}
	}

	users, err := readUserFile(passwdPath, parsePasswd)
	if err != nil {
		return u, fmt.Errorf("read passwd file: %w", err)
	}
	var name string // of the matched entry
	matched := false
	for _, e := range users {
		if userPart == "" && e.uid == 0 || userPart != "" && ua.matches(e.name, e.uid) {
			name, u.uid, u.gid, u.home = e.name, e.uid, e.gid, e.home
			matched = true
			break
		}
	}
	if !matched && userPart != "" {
		if !ua.numeric {
			return u, fmt.Errorf("user %q is not in the passwd file: %w", userPart, errdefs.ErrNotFound)
		}
		u.uid = ua.id
	}

	// An entry with an empty name has no memberships.
	if groupPart == "" && name == "" {
		return u, nil
	}
	groups, err := readUserFile(groupPath, parseGroup)
	if err != nil {
		return u, fmt.Errorf("read group file: %w", err)
	}
	if groupPart == "" {
		for _, g := range groups {
			for _, m := range g.members {
				if m == name {
					u.sgids = append(u.sgids, g.gid)
					break
				}
			}
		}
		return u, nil
	}
	for _, g := range groups {
		if ga.matches(g.name, g.gid) {
			u.gid = g.gid
			return u, nil
		}
	}
	if !ga.numeric {
		return u, fmt.Errorf("group %q is not in the group file: %w", groupPart, errdefs.ErrNotFound)
	}
	u.gid = ga.id
	return u, nil
}

// lookupGroups resolves additional groups, each a name or a gid, with the
// group file at groupPath. A name must have an entry, a gid need not. The
// result has each gid once, in the order first named.
func lookupGroups(names []string, groupPath string) ([]int, error) {
	args := make([]idArg, len(names))
	for i, n := range names {
		if n == "" {
			return nil, fmt.Errorf("empty group name: %w", errdefs.ErrInvalid)
		}
		a, err := parseIDArg(n)
		if err != nil {
			return nil, err
		}
		args[i] = a
	}
	groups, err := readUserFile(groupPath, parseGroup)
	if err != nil {
		return nil, fmt.Errorf("read group file: %w", err)
	}
	var gids []int
	for i, a := range args {
		gid, found := a.id, false
		for _, g := range groups {
			if a.matches(g.name, g.gid) {
				gid, found = g.gid, true
				break
			}
		}
		if !found && !a.numeric {
			return nil, fmt.Errorf("group %q is not in the group file: %w", names[i], errdefs.ErrNotFound)
		}
		if gid < 0 || gid > maxID {
			return nil, fmt.Errorf("group %q has gid %d: %w", names[i], gid, errIDRange())
		}
		dup := false
		for _, have := range gids {
			dup = dup || have == gid
		}
		if !dup {
			gids = append(gids, gid)
		}
	}
	return gids, nil
}

// errIDRange is the error for a uid or gid out of range.
func errIDRange() error {
	return fmt.Errorf("uids and gids must be in range 0-%d: %w", maxID, errdefs.ErrInvalid)
}

// idArg is the user or group part of a user spec, or an additional group.
type idArg struct {
	name    string
	id      int
	numeric bool // a number (matched against ids only), not a name
}

// parseIDArg reads s as a number if strconv.Atoi can (so "+5" is 5), else
// as a name.
func parseIDArg(s string) (idArg, error) {
	id, err := strconv.Atoi(s)
	if err == nil && (id < 0 || id > maxID) || errors.Is(err, strconv.ErrRange) {
		return idArg{}, fmt.Errorf("%q: %w", s, errIDRange())
	}
	if err != nil {
		return idArg{name: s}, nil
	}
	return idArg{name: s, id: id, numeric: true}, nil
}

func (a idArg) matches(name string, id int) bool {
	if a.numeric {
		return id == a.id
	}
	return name == a.name
}

// readUserFile parses the passwd or group file at p. A file that cannot be
// opened, or is not a regular file, has no entries: an image without
// /etc/passwd can still run as a numeric user. The file is opened without
// blocking, so a FIFO put there (the image decides what its /etc/passwd
// is) is rejected rather than waited on or read.
func readUserFile[T any](p string, parse func(io.Reader) ([]T, error)) ([]T, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, nil
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, nil
	}
	r := &io.LimitedReader{R: f, N: maxUserFileSize + 1}
	entries, err := parse(r)
	if err == nil && r.N == 0 {
		err = fmt.Errorf("%s is larger than %d bytes", p, maxUserFileSize)
	}
	return entries, err
}

// parsePasswd reads passwd lines, name:password:uid:gid:gecos:home:shell.
// As in moby/sys/user: surrounding white space is trimmed, blank lines are
// skipped, missing fields are empty and numbers that do not parse are 0.
// A line starting with '#' is not a comment in passwd (it is in group): it
// is an entry named "#...", with uid 0 when its third field is not a number.
func parsePasswd(r io.Reader) ([]passwdEntry, error) {
	var out []passwdEntry
	s := bufio.NewScanner(r)
	for s.Scan() {
		line := bytes.TrimSpace(s.Bytes())
		if len(line) == 0 {
			continue
		}
		f := strings.Split(string(line), ":")
		out = append(out, passwdEntry{name: f[0], uid: atoiField(f, 2), gid: atoiField(f, 3), home: field(f, 5)})
	}
	return out, s.Err()
}

// parseGroup reads group lines, name:password:gid:member,member,... As in
// moby/sys/user: surrounding white space is trimmed, blank lines and lines
// starting with '#' are skipped, missing fields are empty and a gid that
// does not parse is 0. Members are split on commas and not trimmed.
func parseGroup(r io.Reader) ([]groupEntry, error) {
	var out []groupEntry
	s := bufio.NewScanner(r)
	s.Buffer(nil, maxGroupLine)
	for s.Scan() {
		line := bytes.TrimSpace(s.Bytes())
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		f := strings.Split(string(line), ":")
		g := groupEntry{name: f[0], gid: atoiField(f, 2)}
		if m := field(f, 3); m != "" {
			g.members = strings.Split(m, ",")
		}
		out = append(out, g)
	}
	return out, s.Err()
}

func field(f []string, i int) string {
	if i < len(f) {
		return f[i]
	}
	return ""
}

// atoiField is field i as a number: what strconv.Atoi returns, errors
// ignored (0 for text, the nearest int64 when out of range).
func atoiField(f []string, i int) int {
	n, _ := strconv.Atoi(field(f, i))
	return n
}
