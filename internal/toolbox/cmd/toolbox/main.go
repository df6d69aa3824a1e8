// Command toolbox is the multi-call test program of package toolbox.
package main

import (
	"os"

	"github.com/berthrt/berth/internal/toolbox"
	_ "github.com/berthrt/berth/internal/toolbox/trivial" // true and false before the rest initialises
)

func main() { os.Exit(toolbox.Main(os.Args)) }
