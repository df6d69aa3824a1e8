//go:build linux

package layer

import (
	"archive/tar"
	"io"

	"github.com/klauspost/compress/gzip"
)

type tw struct{ w *tar.Writer }

func tarWriter(w io.Writer) tw { return tw{tar.NewWriter(w)} }

// header writes a header and, for size > 0, no content (the caller
// streams it to the underlying writer itself, or the stream is cut short).
func (t tw) header(name string, size int64) error {
	err := t.w.WriteHeader(&tar.Header{Name: name, Size: size, Mode: 0o644, Typeflag: tar.TypeReg})
	if err == nil && size == 0 {
		err = t.w.Flush()
	}
	return err
}

func gzipWriter(w io.Writer) *gzip.Writer { z, _ := gzip.NewWriterLevel(w, gzip.BestSpeed); return z }
