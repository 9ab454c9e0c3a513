package cmdline

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/git-remote-daemon/git-remote-daemon/internal/gitcfg"
	"github.com/git-remote-daemon/git-remote-daemon/internal/thnode"
)

// printXMPPAddress prints, when remotedaemon.xmppJID is set, the
// xmpp:: URL by which others reach this node through its account:
// xmpp::<account>?cs3a=<key>[&repo=<id>].
func printXMPPAddress(c *cli.Context, cfg *gitcfg.Config, a thnode.Addr) {
	account, _ := cfg.Get("remotedaemon.xmppjid")
	if account == "" { // outside a repository: the user's configuration
		if user, err := gitcfg.Read(c.Context, dir(c)); err == nil {
			account, _ = user.Get("remotedaemon.xmppjid")
		}
	}
	if account == "" {
		return
	}
	u := thnode.XMPPURL(account, a)
	if _, err := thnode.ParseXMPPURL(u); err != nil {
		fmt.Fprintf(c.App.ErrWriter, "git-remote-daemon: remotedaemon.xmppJID: %v\n", err)
		return
	}
	fmt.Fprintln(c.App.Writer, u)
}
