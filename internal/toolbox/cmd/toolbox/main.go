// Command toolbox is the multi-call test program of package toolbox.
package main

import (
	"os"

	"github.com/berthrt/berth/internal/toolbox"
)

func main() { os.Exit(toolbox.Main(os.Args)) }
