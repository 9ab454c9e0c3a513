// Command git-remote-daemon watches a repository's remotes and acts when
// one changes. See README.md.
package main

import (
	"os"

	"github.com/git-remote-daemon/git-remote-daemon/internal/cmdline"
)

func main() {
	os.Exit(cmdline.Daemon(os.Args, os.Stdin, os.Stdout, os.Stderr))
}
