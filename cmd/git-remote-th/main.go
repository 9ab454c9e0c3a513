// Command git-remote-th is the git remote helper for th:: URLs (telehash):
// `git clone th::...`, `git fetch`, `git push`. See README.md.
package main

import (
	"os"

	"github.com/git-remote-daemon/git-remote-daemon/internal/cmdline"
)

func main() {
	os.Exit(cmdline.TH(os.Args, os.Stdin, os.Stdout, os.Stderr))
}
