//go:build !linux

package toolbox

import (
	"fmt"
	"os"
)

// Main runs the applet named by args; the toolbox works only on Linux.
func Main(args []string) int {
	fmt.Fprintln(os.Stderr, "toolbox: only Linux is supported")
	return 1
}
