// Command initorder is a program that imports net/http and this package,
// for TestInitOrder: run as "berth-init", it shows which packages Go
// initialises before the package's hook.
package main

import (
	_ "net/http"

	_ "github.com/berthrt/berth/namespace"
)

func main() {}
