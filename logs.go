//go:build linux

package berth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"
)

// rotatingLog is a container's log file, rotated by size: container.log,
// container.log.1 (older), ... up to maxFiles files in all.
type rotatingLog struct {
	mu       sync.Mutex
	path     string
	f        *os.File
	size     int64
	maxSize  int64
	maxFiles int
}

func newRotatingLog(path string, maxSize int64, maxFiles int) (*rotatingLog, error) {
	if maxSize <= 0 {
		maxSize = 10 << 20
	}
	if maxFiles <= 0 {
		maxFiles = 3
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &rotatingLog{path: path, f: f, size: fi.Size(), maxSize: maxSize, maxFiles: maxFiles}, nil
}

func (l *rotatingLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return 0, os.ErrClosed
	}
	if l.size > 0 && l.size+int64(len(p)) > l.maxSize {
		if err := l.rotate(); err != nil {
			return 0, err
		}
	}
	n, err := l.f.Write(p)
	l.size += int64(n)
	return n, err
}

func (l *rotatingLog) rotate() error {
	l.f.Close()
	for i := l.maxFiles - 1; i >= 1; i-- {
		src := l.path
		if i > 1 {
			src = l.path + "." + strconv.Itoa(i-1)
		}
		_ = os.Rename(src, l.path+"."+strconv.Itoa(i))
	}
	if l.maxFiles == 1 {
		_ = os.Remove(l.path)
	}
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		l.f = nil
		return err
	}
	l.f, l.size = f, 0
	return nil
}

func (l *rotatingLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// LogsOptions configure Logs.
type LogsOptions struct {
	// Follow keeps the reader open, returning new output as the container
	// writes it, until the container exits or ctx ends.
	Follow bool
}

// Logs returns the container's output (stdout and stderr interleaved, as
// written), oldest rotated file first.
func (c *Container) Logs(ctx context.Context, opts LogsOptions) (io.ReadCloser, error) {
	path := c.dir + "/container.log"
	var readers []io.Reader
	var files []*os.File
	for i := 8; i >= 1; i-- {
		if f, err := os.Open(path + "." + strconv.Itoa(i)); err == nil {
			readers = append(readers, f)
			files = append(files, f)
		}
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		if _, serr := os.Stat(c.dir); serr != nil {
			return nil, fmt.Errorf("logs of %s: %w", c.id[:12], ErrNotFound)
		}
		f = nil
	} else if err != nil {
		return nil, err
	}
	if f != nil {
		files = append(files, f)
		readers = append(readers, f)
	}
	lr := &logReader{ctx: ctx, r: io.MultiReader(readers...), files: files, last: f, c: c, follow: opts.Follow}
	return lr, nil
}

type logReader struct {
	ctx    context.Context
	r      io.Reader
	files  []*os.File
	last   *os.File
	c      *Container
	follow bool
}

func (l *logReader) Read(p []byte) (int, error) {
	for {
		n, err := l.r.Read(p)
		if n > 0 || err != io.EOF || !l.follow {
			return n, err
		}
		if !l.c.State().Running {
			// One more read for what was written just before the exit.
			if l.last != nil {
				if n, _ := l.last.Read(p); n > 0 {
					return n, nil
				}
			}
			return 0, io.EOF
		}
		select {
		case <-l.ctx.Done():
			return 0, io.EOF
		case <-time.After(50 * time.Millisecond):
		}
		if l.last != nil {
			l.r = l.last
		}
	}
}

func (l *logReader) Close() error {
	for _, f := range l.files {
		f.Close()
	}
	return nil
}
