//go:build linux

package namespace

import (
	"os"
	"strconv"
	"syscall"
	"time"
)

// A tracer appends a timeline of a start to the file named by the
// BERTH_TRACE environment variable of the owner (the init inherits the
// path through hostInfo.Trace): one line per step, "<unix µs> <pid> <who>
// cpu=<µs> flt=<n> <step>" with the process's CPU time and minor page
// faults so far, for finding where a start's time goes. A nil tracer does
// nothing, which is the default.
type tracer struct {
	f   *os.File
	who string
}

// traceEnv is the environment variable naming the trace file.
const traceEnv = "BERTH_TRACE"

func openTracer(path, who string) *tracer {
	if path == "" {
		return nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil
	}
	return &tracer{f: f, who: who}
}

func (t *tracer) mark(step string) { t.markAt(time.Now(), step) }

func (t *tracer) markAt(when time.Time, step string) {
	if t == nil {
		return
	}
	b := strconv.AppendInt(nil, when.UnixMicro(), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(os.Getpid()), 10)
	b = append(b, ' ')
	b = append(b, t.who...)
	b = append(b, ' ')
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	b = append(b, "cpu="...)
	b = strconv.AppendInt(b, cpuMicros(&ru), 10)
	b = append(b, " flt="...)
	b = strconv.AppendInt(b, ru.Minflt, 10)
	b = append(b, ' ')
	b = append(b, step...)
	b = append(b, '\n')
	_, _ = t.f.Write(b) // O_APPEND: one write per line, lines do not interleave
}

// cpuMicros is the user and system time of ru (a *syscall.Rusage) in µs.
func cpuMicros(ru any) int64 {
	r, ok := ru.(*syscall.Rusage)
	if !ok || r == nil {
		return 0
	}
	return (r.Utime.Nano() + r.Stime.Nano()) / 1000
}

func (t *tracer) close() {
	if t != nil {
		t.f.Close()
	}
}
