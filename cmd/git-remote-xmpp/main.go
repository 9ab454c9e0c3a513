// Command git-remote-xmpp is the git remote helper for xmpp:: URLs:
// `git clone xmpp::...`, `git fetch`, `git push` over telehash with an
// XMPP server as the path. See docs/xmpp-remotes.md.
package main

import (
	"os"

	"github.com/git-remote-daemon/git-remote-daemon/internal/cmdline"
)

func main() {
	os.Exit(cmdline.XMPP(os.Args, os.Stdin, os.Stdout, os.Stderr))
}
