// Package trivial runs the toolbox applets that need nothing, true and
// false, from its init function, before the rest of the program is
// initialised. A program that imports it (for its side effect) exits there
// when run as one of them: a Go program's package initialisation costs
// milliseconds (net/http alone about 5 on the CI machine), which a
// container benchmark running `true` would otherwise measure.
//
// The applet is named as toolbox.Main names it: by the base name of
// os.Args[0], or by os.Args[1] when that base name is "toolbox".
package trivial

import "os"

func init() {
	if code, ok := exitCode(os.Args); ok {
		os.Exit(code)
	}
}

// exitCode returns the exit status of args when they run a trivial applet.
func exitCode(args []string) (int, bool) {
	if len(args) == 0 {
		return 0, false
	}
	name := baseName(args[0])
	if name == "toolbox" && len(args) > 1 {
		name = args[1]
	}
	switch name {
	case "true":
		return 0, true
	case "false":
		return 1, true
	}
	return 0, false
}

// baseName is filepath.Base without importing path/filepath, which would
// delay this package's initialisation.
func baseName(p string) string {
	for len(p) > 1 && p[len(p)-1] == '/' {
		p = p[:len(p)-1]
	}
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' {
			return p[i+1:]
		}
	}
	return p
}
