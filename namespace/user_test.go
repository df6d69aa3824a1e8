//go:build linux

package namespace

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berthrt/berth/errdefs"
	"github.com/moby/sys/user"
	"golang.org/x/sys/unix"
)

const (
	testPasswd = `root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
alice:x:1000:1000:Alice:/home/alice:/bin/sh
bob:x:1001:1001::/home/bob:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
`
	testGroup = `root:x:0:root
daemon:x:1:
wheel:x:10:root,alice
staff:x:50:alice,bob
alice:x:1000:
bob:x:1001:
nogroup:x:65534:
`
	// What moby/sys/user makes of odd lines: white space around a line is
	// trimmed, blank lines are skipped, '#' starts a comment in group but
	// not in passwd, short lines leave fields empty (numbers 0), the first
	// of two entries wins, members are not trimmed.
	quirkyPasswd = "\n  alice:x:1000:1000::/home/alice:/bin/sh  \r\n" +
		"alice:x:2000:2000::/home/alice2:/bin/sh\n" +
		"carol:x:1002\n" +
		"dave:x:notanumber:7::/home/dave\n" +
		"\t\n"
	quirkyGroup = "# wheel:x:10:alice\n" +
		"   \n" +
		"  staff:x:50:bob,alice  \n" +
		"staff:x:51:alice\n" +
		"short:x:60\n" +
		"spaced:x:70:bob, alice\n" +
		"carols:x:80:carol\n" +
		"dupe:x:50:alice\n"
	commentPasswd = "# users\nroot:x:0:0:root:/root:/bin/sh\n"
)

// userFiles writes passwd and group files into a new directory; a nil
// content leaves that file missing.
func userFiles(t *testing.T, passwd, group *string) (passwdPath, groupPath string) {
	t.Helper()
	dir := t.TempDir()
	passwdPath, groupPath = filepath.Join(dir, "passwd"), filepath.Join(dir, "group")
	for p, c := range map[string]*string{passwdPath: passwd, groupPath: group} {
		if c != nil {
			if err := os.WriteFile(p, []byte(*c), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return passwdPath, groupPath
}

func ptr(s string) *string { return &s }

func TestUserLookup(t *testing.T) {
	type files struct{ passwd, group *string }
	std := files{ptr(testPasswd), ptr(testGroup)}
	for _, tc := range []struct {
		name    string
		files   files
		spec    string
		want    execUser
		wantErr error // errors.Is
	}{
		{"empty is root", std, "", execUser{0, 0, []int{0, 10}, "/root"}, nil},
		{"name", std, "alice", execUser{1000, 1000, []int{10, 50}, "/home/alice"}, nil},
		{"uid", std, "1000", execUser{1000, 1000, []int{10, 50}, "/home/alice"}, nil},
		{"name:group", std, "alice:staff", execUser{1000, 50, nil, "/home/alice"}, nil},
		{"uid:gid", std, "1000:50", execUser{1000, 50, nil, "/home/alice"}, nil},
		{"name:gid", std, "alice:50", execUser{1000, 50, nil, "/home/alice"}, nil},
		{"uid:group", std, "1001:wheel", execUser{1001, 10, nil, "/home/bob"}, nil},
		{"no user part", std, ":staff", execUser{0, 50, nil, "/root"}, nil},
		{"user without memberships", std, "nobody", execUser{65534, 65534, nil, "/nonexistent"}, nil},
		{"numeric uid not in passwd", std, "1234", execUser{1234, 0, nil, "/"}, nil},
		{"numeric uid:gid not in files", std, "1234:4321", execUser{1234, 4321, nil, "/"}, nil},
		{"name:numeric gid not in group", std, "alice:4321", execUser{1000, 4321, nil, "/home/alice"}, nil},
		{"plus sign is a number", std, "+1000", execUser{1000, 1000, []int{10, 50}, "/home/alice"}, nil},
		{"largest uid", std, "2147483647", execUser{2147483647, 0, nil, "/"}, nil},
		{"unknown name", std, "nosuchuser", execUser{}, errdefs.ErrNotFound},
		{"unknown group", std, "alice:nosuchgroup", execUser{}, errdefs.ErrNotFound},
		{"uid too large", std, "2147483648", execUser{}, errdefs.ErrInvalid},
		{"uid overflows int64", std, "99999999999999999999", execUser{}, errdefs.ErrInvalid},
		{"negative uid", std, "-1", execUser{}, errdefs.ErrInvalid},
		{"gid too large", std, "alice:2147483648", execUser{}, errdefs.ErrInvalid},
		{"no files: root", files{}, "", execUser{0, 0, nil, "/"}, nil},
		{"no files: uid", files{}, "1000", execUser{1000, 0, nil, "/"}, nil},
		{"no files: uid:gid", files{}, "1000:50", execUser{1000, 50, nil, "/"}, nil},
		{"no files: name", files{}, "alice", execUser{}, errdefs.ErrNotFound},
		{"no files: group name", files{}, "1000:staff", execUser{}, errdefs.ErrNotFound},
		{"no group file", files{passwd: ptr(testPasswd)}, "alice", execUser{1000, 1000, nil, "/home/alice"}, nil},
		{"first entry wins, members not trimmed", files{ptr(quirkyPasswd), ptr(quirkyGroup)}, "alice", execUser{1000, 1000, []int{50, 51, 50}, "/home/alice"}, nil},
		{"first group wins", files{ptr(quirkyPasswd), ptr(quirkyGroup)}, "alice:staff", execUser{1000, 50, nil, "/home/alice"}, nil},
		{"group comment skipped", files{ptr(quirkyPasswd), ptr(quirkyGroup)}, "alice:wheel", execUser{}, errdefs.ErrNotFound},
		{"short passwd line", files{ptr(quirkyPasswd), ptr(quirkyGroup)}, "carol", execUser{1002, 0, []int{80}, ""}, nil},
		{"short group line", files{ptr(quirkyPasswd), ptr(quirkyGroup)}, "carol:short", execUser{1002, 60, nil, ""}, nil},
		{"unparsable uid is 0", files{ptr(quirkyPasswd), ptr(quirkyGroup)}, "dave", execUser{0, 7, nil, "/home/dave"}, nil},
		{"passwd comment is an entry", files{ptr(commentPasswd), ptr(testGroup)}, "", execUser{0, 0, nil, ""}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pp, gp := userFiles(t, tc.files.passwd, tc.files.group)
			got, err := lookupUser(tc.spec, pp, gp)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("lookupUser(%q) = %+v, %v; want error %v", tc.spec, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got.uid != tc.want.uid || got.gid != tc.want.gid || got.home != tc.want.home || !slices.Equal(got.sgids, tc.want.sgids) {
				t.Fatalf("lookupUser(%q) = %+v, %v; want %+v", tc.spec, got, err, tc.want)
			}
		})
	}
}

func TestUserAdditionalGroups(t *testing.T) {
	for _, tc := range []struct {
		name    string
		group   *string
		groups  []string
		want    []int
		wantErr error
	}{
		{"names", ptr(testGroup), []string{"wheel", "staff"}, []int{10, 50}, nil},
		{"numbers in and not in the file", ptr(testGroup), []string{"50", "4000"}, []int{50, 4000}, nil},
		{"duplicates", ptr(testGroup), []string{"staff", "50", "4000", "4000", "wheel"}, []int{50, 4000, 10}, nil},
		{"first entry wins", ptr(quirkyGroup), []string{"staff", "51"}, []int{50, 51}, nil},
		{"unknown name", ptr(testGroup), []string{"wheel", "nosuchgroup"}, nil, errdefs.ErrNotFound},
		{"comment is not a group", ptr(quirkyGroup), []string{"# wheel"}, nil, errdefs.ErrNotFound},
		{"gid too large", ptr(testGroup), []string{"2147483648"}, nil, errdefs.ErrInvalid},
		{"negative gid", ptr(testGroup), []string{"-1"}, nil, errdefs.ErrInvalid},
		{"entry's gid too large", ptr("huge:x:3000000000:\n"), []string{"huge"}, nil, errdefs.ErrInvalid},
		{"empty name", ptr(testGroup), []string{""}, nil, errdefs.ErrInvalid}, // moby/sys/user panics
		{"no file: number", nil, []string{"4000"}, []int{4000}, nil},
		{"no file: name", nil, []string{"staff"}, nil, errdefs.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, gp := userFiles(t, nil, tc.group)
			got, err := lookupGroups(tc.groups, gp)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("lookupGroups(%q) = %v, %v; want error %v", tc.groups, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("lookupGroups(%q) = %v, %v; want %v", tc.groups, got, err, tc.want)
			}
		})
	}
}

// lookupUser and lookupGroups give what moby/sys/user gives (which runc and
// Docker use) on the same files. Only the order of additional groups may
// differ: moby's comes from a map.
func TestUserMatchesMoby(t *testing.T) {
	specs := []string{"", "root", "0", "alice", "1000", "bob", "1001", "nobody", "daemon:daemon",
		"alice:staff", "alice:50", "1000:50", "1000:staff", "alice:4321", "1234", "1234:4321", "1234:staff",
		":staff", ":50", ":", "+1000", "0x10", "1e3", " alice", "alice:", "alice:staff:extra",
		"carol", "carol:short", "dave", "bob:spaced", "# users", "#", "2147483647", "2147483648",
		"-1", "99999999999999999999", "alice:-1", "alice:2147483648", "nosuchuser", "alice:nosuchgroup",
		"nosuchuser:staff"}
	groupLists := [][]string{{"wheel"}, {"wheel", "staff"}, {"50", "4000", "4000", "staff"}, {"nosuchgroup"},
		{"-1"}, {"2147483648"}, {"short"}, {"spaced", "dupe", "staff"}, {"# wheel"}, {"huge"}, {"0x10"}}
	for name, fs := range map[string][2]*string{
		"standard":   {ptr(testPasswd), ptr(testGroup)},
		"quirky":     {ptr(quirkyPasswd), ptr(quirkyGroup + "huge:x:3000000000:\n")},
		"comment":    {ptr(commentPasswd), ptr(testGroup)},
		"no files":   {nil, nil},
		"no group":   {ptr(testPasswd), nil},
		"no passwd":  {nil, ptr(testGroup)},
		"empty":      {ptr(""), ptr("")},
		"empty name": {ptr(":x:0:0::/:\n"), ptr("g:x:5:\n")},
	} {
		pp, gp := userFiles(t, fs[0], fs[1])
		for _, spec := range specs {
			got, err := lookupUser(spec, pp, gp)
			want, merr := user.GetExecUserPath(spec, &user.ExecUser{Home: "/"}, pp, gp)
			switch {
			case (err != nil) != (merr != nil):
				t.Errorf("%s: %q: got %+v, %v; moby %v", name, spec, got, err, merr)
			case err == nil && (got.uid != want.Uid || got.gid != want.Gid || got.home != want.Home || !slices.Equal(got.sgids, want.Sgids) && len(got.sgids)+len(want.Sgids) > 0):
				t.Errorf("%s: %q: got %+v; moby %+v", name, spec, got, *want)
			}
		}
		for _, gs := range groupLists {
			got, err := lookupGroups(gs, gp)
			want, merr := user.GetAdditionalGroupsPath(gs, gp)
			slices.Sort(got)
			slices.Sort(want)
			if (err != nil) != (merr != nil) || !slices.Equal(got, want) && len(got)+len(want) > 0 {
				t.Errorf("%s: groups %q: got %v, %v; moby %v, %v", name, gs, got, err, want, merr)
			}
		}
	}
}

// A FIFO as passwd or group counts as missing, and is not waited on.
func TestUserFileFIFO(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		u, err := lookupUser("1234:staff", fifo, fifo)
		if err == nil || !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("lookupUser: %+v, %v; want group not found", u, err)
		}
		_, err = lookupGroups([]string{"4000"}, fifo)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("blocked on a FIFO")
	}
}

// Files are read up to 10 MiB, lines up to bufio's 64 KiB in passwd and
// 1 MiB in group, as moby/sys/user reads them for GetExecUserPath.
func TestUserFileLimits(t *testing.T) {
	const max = 10 << 20
	full := (testGroup + strings.Repeat("#"+strings.Repeat("x", 1023)+"\n", max>>10))[:max]
	longGroup := testGroup + "long:x:5:" + strings.Repeat("m,", 300<<10) + "alice\n"
	longPasswd := testPasswd + "x:" + strings.Repeat("y", 70<<10) + "\n"
	for _, tc := range []struct {
		name          string
		passwd, group string
		ok            bool
	}{
		{"10 MiB group file", testPasswd, full, true},
		{"group file over 10 MiB", testPasswd, full + "\n", false},
		{"passwd file over 10 MiB", testPasswd + full[len(testGroup):] + "\n", testGroup, false},
		{"600 KiB group line", testPasswd, longGroup, true},
		{"70 KiB passwd line", longPasswd, testGroup, false},
	} {
		pp, gp := userFiles(t, &tc.passwd, &tc.group)
		u, err := lookupUser("alice", pp, gp)
		_, merr := user.GetExecUserPath("alice", nil, pp, gp)
		if (err == nil) != tc.ok || (merr == nil) != tc.ok {
			t.Errorf("%s: got %+v, %v; moby: %v", tc.name, u, err, merr)
		}
	}
	// Unlike moby's GetAdditionalGroupsPath (which reads its file without
	// the cap), lookupGroups applies the same cap.
	_, gp := userFiles(t, nil, ptr(full+"\n"))
	if _, err := lookupGroups([]string{"4000"}, gp); err == nil {
		t.Error("additional groups, group file over 10 MiB: no error")
	}
}

// lookPath with an empty search path finds nothing, as filepath.SplitList("")
// has no entries (it does not search the working directory).
func TestUserLookPathEmptyPath(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "prog"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var se *SetupError
	if _, err := lookPath("prog", "", dir); !errors.As(err, &se) || se.Code != 127 {
		t.Fatalf("empty PATH: %v", err)
	}
	if p, err := lookPath("prog", ":/nonexistent", dir); err != nil || p != filepath.Join(dir, "prog") {
		t.Fatalf("PATH with an empty entry: %q, %v", p, err)
	}
}
