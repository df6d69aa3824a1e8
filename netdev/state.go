//go:build linux

package netdev

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"github.com/berthrt/berth/internal/fsutil"
)

// State files are written on every Attach and Detach, so they must be
// cheap: replacing a file by rename costs about a millisecond on ext4 (it
// flushes the new file's data when it replaces an old one) against a few
// microseconds for an overwrite in place. So each state has two slot files,
// <base>.a and <base>.b, each holding one complete version:
//
//	berth-state gen=<n> len=<bytes> crc=<crc32c hex>\n<json>
//
// A writer (holding the state's lock) overwrites the older or invalid slot
// with generation max+1; a reader takes the valid slot with the highest
// generation. A write cut short by a crash fails its checksum, and the
// other slot, the previous version, is used. Writes are not fsynced (all
// that this state describes, links and rules, dies with the host too),
// except where noted (a network's creation).

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

type slot struct {
	gen  uint64
	data []byte
	ok   bool
}

func readSlot(path string) (slot, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return slot{}, err
	}
	nl := bytes.IndexByte(b, '\n')
	if nl < 0 {
		return slot{}, nil
	}
	f := strings.Fields(string(b[:nl]))
	if len(f) != 4 || f[0] != "berth-state" {
		return slot{}, nil
	}
	var gen, n, sum uint64
	for _, kv := range f[1:] {
		k, v, _ := strings.Cut(kv, "=")
		var perr error
		switch k {
		case "gen":
			gen, perr = strconv.ParseUint(v, 10, 64)
		case "len":
			n, perr = strconv.ParseUint(v, 10, 32)
		case "crc":
			sum, perr = strconv.ParseUint(v, 16, 32)
		}
		if perr != nil {
			return slot{}, nil
		}
	}
	data := b[nl+1:]
	if uint64(len(data)) < n {
		return slot{}, nil
	}
	data = data[:n]
	if uint64(crc32.Checksum(data, castagnoli)) != sum {
		return slot{}, nil
	}
	return slot{gen: gen, data: data, ok: true}, nil
}

// readSlots returns both slots; err wraps fs.ErrNotExist when neither file
// exists.
func readSlots(base string) (a, b slot, err error) {
	a, errA := readSlot(base + ".a")
	b, errB := readSlot(base + ".b")
	if errors.Is(errA, fs.ErrNotExist) && errors.Is(errB, fs.ErrNotExist) {
		return a, b, errA
	}
	if errA != nil && !errors.Is(errA, fs.ErrNotExist) {
		return a, b, errA
	}
	if errB != nil && !errors.Is(errB, fs.ErrNotExist) {
		return a, b, errB
	}
	return a, b, nil
}

// readState returns the newest valid version stored at base; an error
// wrapping fs.ErrNotExist when there is none.
func readState(base string) ([]byte, error) {
	a, b, err := readSlots(base)
	if err != nil {
		return nil, err
	}
	switch {
	case a.ok && (!b.ok || a.gen > b.gen):
		return a.data, nil
	case b.ok:
		return b.data, nil
	}
	return nil, fmt.Errorf("%s: no valid state: %w", base, fs.ErrNotExist)
}

// writeState stores data as the newest version at base. The caller holds
// the state's lock. With durable, the slot and its directory are fsynced.
func writeState(base string, data []byte, durable bool) error {
	a, b, err := readSlots(base)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	gen := max(a.gen, b.gen) + 1
	path := base + ".a"
	if a.ok && (!b.ok || a.gen > b.gen) {
		path = base + ".b" // a is the newest: overwrite b
	}
	hdr := fmt.Sprintf("berth-state gen=%d len=%d crc=%08x\n", gen, len(data), crc32.Checksum(data, castagnoli))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	buf := make([]byte, 0, len(hdr)+len(data)+1)
	buf = append(append(append(buf, hdr...), data...), '\n')
	_, err = f.WriteAt(buf, 0)
	if err == nil {
		// Drop a longer old version's tail, for people reading the file;
		// the header's length is what counts.
		if st, serr := f.Stat(); serr == nil && st.Size() > int64(len(buf)) {
			err = f.Truncate(int64(len(buf)))
		}
	}
	if err == nil && durable {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && durable {
		err = fsutil.SyncDir(dirOf(base))
	}
	return err
}

// removeState deletes both slots.
func removeState(base string) error {
	var errs error
	for _, p := range []string{base + ".a", base + ".b"} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = errors.Join(errs, err)
		}
	}
	return errs
}

func dirOf(p string) string {
	if i := strings.LastIndexByte(p, '/'); i > 0 {
		return p[:i]
	}
	return "."
}
