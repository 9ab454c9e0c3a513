package cmdline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/helper"
	"github.com/git-remote-daemon/git-remote-daemon/internal/gitcfg"
	"github.com/git-remote-daemon/git-remote-daemon/internal/pairing"
	"github.com/git-remote-daemon/git-remote-daemon/internal/thnode"
)

// xmppUsage is what `git-remote-xmpp --help` prints.
const xmppUsage = `usage: git-remote-xmpp <remote> <xmpp address>

The git remote helper for xmpp:: URLs (xmpp::user@domain?cs3a=<key>&repo=<id>):
git runs it for ` + "`git clone xmpp::...`" + `, git fetch and git push; you do not run it
yourself. It carries git's pack protocol over telehash, with the XMPP server as the
path, to the node of that account whose key the URL pins. It uses the daemon's node
when one runs for this identity, else logs in as remotedaemon.xmppJID itself (the
password from git's credential helpers). See docs/xmpp-remotes.md.
`

// onlineWait bounds git-remote-xmpp's wait for the pinned node's
// presence after its own login.
const onlineWait = 15 * time.Second

// otherGrace is how long a node of the account that presents another
// key than the pinned one leaves the pinned one to show up.
const otherGrace = 2 * time.Second

// XMPP is git-remote-xmpp: git runs it as `git-remote-xmpp <remote>
// <address>`; it returns the exit status.
func XMPP(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	run, code, done := startHelper(helperSpec{name: "git-remote-xmpp", usage: xmppUsage, what: "xmpp address", scheme: "xmpp::",
		parse: func(u string) error { _, err := thnode.ParseXMPPURL(u); return err }}, args, stdout, stderr)
	if done {
		return code
	}
	defer run.stop()
	ctx, cfg, log, fail, remote, idPath := run.ctx, run.cfg, run.log, run.fail, run.remote, run.idPath
	addr, url, err := pickXMPPURL(cfg, remote, run.url, os.Getenv(thnode.NodeEnv))
	if err != nil {
		return fail("%v", err)
	}
	id, err := thnode.LoadOrCreate(idPath)
	if err != nil {
		return fail("identity: %v", err)
	}
	x, _, err := thnode.ReadXMPPSettings(cfg, addr)
	if err != nil {
		return fail("%v", err)
	}
	linkTimeout, err := thnode.LinkTimeout(cfg)
	if err != nil {
		return fail("%v", err)
	}
	client := &thnode.Client{Identity: id, IdentityPath: idPath, LinkTimeout: linkTimeout, Logger: log,
		Pairing: &pairing.Inviter{Logger: log}, // holds the invitations of daemons registering with it
		// The daemon's node does not pin this node (a remote it does
		// not have): it never talks to it, so a node of our own may.
		Alone: func(err error) bool { return strings.Contains(err.Error(), thnode.ErrXMPPNotPinned.Error()) },
		Attach: func(ctx context.Context, n *thnode.Node) error {
			b, err := n.AttachXMPP(ctx, x, ".", log)
			if err != nil {
				return err
			}
			wait := onlineWait
			if linkTimeout > 0 {
				wait = linkTimeout
			}
			wctx, cancel := context.WithTimeout(ctx, wait)
			defer cancel()
			// A node of the account presenting another key: a short grace
			// for the pinned one (another device) to show, then refused.
			go func() {
				for wctx.Err() == nil {
					if len(thnode.OtherNodes(b, addr)) > 0 {
						time.Sleep(otherGrace)
						cancel()
						return
					}
					time.Sleep(20 * time.Millisecond)
				}
			}()
			if !thnode.WaitOnline(wctx, b, addr.Hashname) {
				if other := thnode.OtherNodes(b, addr); len(other) > 0 {
					return fmt.Errorf("%s: its node presents the key of %s, not the pinned %s: refused, as ssh refuses a changed host key "+
						"(if the account really has a new node, put its key in the remote's URL)", addr.XMPP, other[0], addr.Hashname)
				}
				return fmt.Errorf("%s: no node with the pinned key %s is online (is its daemon running, and does it name %s in an xmpp:: remote?)",
					addr.XMPP, addr.Hashname, x.JID)
			}
			return nil
		}}
	defer client.Close()
	err = helper.Run(ctx, helper.Config{
		Stdin: stdin, Stdout: stdout, Stderr: stderr, Remote: remote, URL: url, Logger: log,
		Dial: func(ctx context.Context, req helper.Request) (helper.Conn, error) {
			return client.Dial(ctx, addr, thnode.ServiceGit)
		},
	})
	var ee *helper.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.Code
	}
	return 128
}

// pickXMPPURL is thnode.PickURL for xmpp:: remotes: the URL of the node
// the daemon asked for (want) among the remote's URLs, else url.
func pickXMPPURL(cfg *gitcfg.Config, remote, url, want string) (thnode.Addr, string, error) {
	addr, err := thnode.ParseXMPPURL(url)
	if err != nil {
		return thnode.Addr{}, "", err
	}
	if want == "" || want == string(addr.Hashname) {
		return addr, url, nil
	}
	for _, u := range cfg.GetAll("remote." + remote + ".url") {
		u = cfg.RewriteURL(u, false)
		if a, err := thnode.ParseXMPPURL(u); err == nil && string(a.Hashname) == want {
			return a, u, nil
		}
	}
	return addr, url, nil
}
