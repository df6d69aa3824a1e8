//go:build linux

package namespace

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// shrinkDelay is how long a supervisor waits after starting its container
// before it drops its mappings of the binary (a container that is done by
// then never pays for it).
const shrinkDelay = 50 * time.Millisecond

// shrink unmaps the pages of the binary that the supervisor touched while
// it started (package initialisation runs code all over the program): it
// calls madvise(MADV_DONTNEED) on the binary's read-only mappings. The
// pages stay in the page cache, shared with the owner, and fault back in
// when the supervisor needs them (to serve an exec, a few dozen faults).
// A mapping with private copies in it (a PIE's relocated read-only data,
// "Anonymous" in smaps) is left alone: dropping those would undo the
// relocations. This takes a lone idle supervisor's PSS from about 4.5 MB
// to 2.1 MB (BenchmarkBerthSupervisorPSS). Freeing the heap as well
// (debug.FreeOSMemory) made it larger: the collection touches new pages.
func shrink() {
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/self/exe", &st); err != nil {
		return
	}
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		return
	}
	for _, m := range cleanMappings(b, st.Ino) {
		_, _, _ = unix.Syscall(unix.SYS_MADVISE, m[0], m[1]-m[0], unix.MADV_DONTNEED)
	}
}

// cleanMappings returns the address ranges of the private read-only
// mappings ("r--p", "r-xp") of inode ino in smaps that hold no anonymous
// (copied-on-write) pages.
func cleanMappings(smaps []byte, ino uint64) [][2]uintptr {
	var out [][2]uintptr
	var cur [2]uintptr
	in := false
	sc := bufio.NewScanner(bytes.NewReader(smaps))
	for sc.Scan() {
		line := sc.Bytes()
		if start, end, ok := mappingHeader(line); ok {
			cur, in = [2]uintptr{start, end}, readOnlyOf(line, ino)
			continue
		}
		if !in || !bytes.HasPrefix(line, []byte("Anonymous:")) {
			continue
		}
		if kb := bytes.Fields(line[len("Anonymous:"):]); len(kb) > 0 && string(kb[0]) == "0" {
			out = append(out, cur)
		}
		in = false
	}
	return out
}

// mappingHeader parses the range of a smaps header line
// ("7f00-7f10 r-xp 00000000 fe:00 1234 /path").
func mappingHeader(line []byte) (start, end uintptr, ok bool) {
	rng, _, found := bytes.Cut(line, []byte(" "))
	if !found {
		return 0, 0, false
	}
	lo, hi, found := bytes.Cut(rng, []byte("-"))
	if !found {
		return 0, 0, false
	}
	s, err1 := strconv.ParseUint(string(lo), 16, 64)
	e, err2 := strconv.ParseUint(string(hi), 16, 64)
	if err1 != nil || err2 != nil || e <= s {
		return 0, 0, false
	}
	return uintptr(s), uintptr(e), true
}

// readOnlyOf says whether a header line maps inode ino privately read-only.
func readOnlyOf(line []byte, ino uint64) bool {
	f := bytes.Fields(line)
	if len(f) < 6 || (string(f[1]) != "r--p" && string(f[1]) != "r-xp") {
		return false
	}
	n, err := strconv.ParseUint(string(f[4]), 10, 64)
	return err == nil && n == ino
}
