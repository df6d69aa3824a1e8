//go:build !unix

package toolboxtest

import (
	"errors"
	"os"
)

func mknod(string, byte, os.FileMode, int64, int64) error {
	return errors.New("devices and fifos need a Unix system")
}
