//go:build linux

package bench

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berthrt/berth/internal/testutil"
)

// BenchmarkPullPeakMemory pulls the 5-layer image with the berth CLI in a
// process of its own and reports that process's peak RSS: the pull
// streams, so it must not grow with the layer sizes.
func BenchmarkPullPeakMemory(b *testing.B) {
	testutil.RequiresRoot(b)
	ref, _ := pullImage(b)
	bin := filepath.Join(b.TempDir(), "berth")
	build := exec.Command("go", "build", "-o", bin, "../cmd/berth")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build: %v %s", err, out)
	}
	var peak int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		root := b.TempDir()
		cmd := exec.Command(bin, "--root", root, "pull", "-q", ref)
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		// rusage's maxrss of a child counts the parent's memory at fork
		// (this benchmark holds the image in memory), so sample the
		// child's own high-water mark, VmHWM, until it exits.
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		status := "/proc/" + strconv.Itoa(cmd.Process.Pid) + "/status"
	wait:
		for {
			if hwm := vmHWM(status); hwm > peak {
				peak = hwm
			}
			select {
			case err := <-done:
				if err != nil {
					b.Fatalf("berth pull: %v", err)
				}
				break wait
			case <-time.After(2 * time.Millisecond):
			}
		}
		os.RemoveAll(root)
	}
	b.ReportMetric(float64(peak)/1024, "peak-rss-MB")
}

// vmHWM reads the VmHWM line (KiB) of a /proc/<pid>/status file; 0 when
// the process is gone.
func vmHWM(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}
