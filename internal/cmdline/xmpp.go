package cmdline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/helper"
	"github.com/git-remote-daemon/git-remote-daemon/internal/gitcfg"
	"github.com/git-remote-daemon/git-remote-daemon/internal/pairing"
	"github.com/git-remote-daemon/git-remote-daemon/internal/thnode"
	"github.com/git-remote-daemon/git-remote-daemon/telehash"
)

// xmppUsage is what `git-remote-xmpp --help` prints.
const xmppUsage = `usage: git-remote-xmpp <remote> <xmpp address>

The git remote helper for xmpp:: URLs (xmpp::user@domain?cs3a=<key>&repo=<id>):
git runs it for ` + "`git clone xmpp::...`" + `, git fetch and git push; you do not run it
yourself. It carries git's pack protocol over telehash, with the XMPP server as the
path, to the node of that account whose key the URL pins. A URL without a key
(xmpp::user@domain[?repo=<id>]) is a first contact: the keys the account's nodes online
announce are pinned into the remote's URLs, as ssh learns a host key, and a node with
another key is refused afterwards. It uses the daemon's node
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
		parse: func(u string) error { _, err := thnode.ParseXMPPURL(u); return unpinnedOK(err) }}, args, stdout, stderr)
	if done {
		return code
	}
	defer run.stop()
	ctx, cfg, log, fail, remote, idPath := run.ctx, run.cfg, run.log, run.fail, run.remote, run.idPath
	id, err := thnode.LoadOrCreate(idPath)
	if err != nil {
		return fail("identity: %v", err)
	}
	linkTimeout, err := thnode.LinkTimeout(cfg)
	if err != nil {
		return fail("%v", err)
	}
	wait := onlineWait
	if linkTimeout > 0 {
		wait = linkTimeout
	}
	if a, err := thnode.ParseXMPPURL(run.url); errors.Is(err, thnode.ErrXMPPUnpinned) {
		u, err := firstContact(ctx, cfg, id, remote, run.url, a, wait, stderr, log)
		if err != nil {
			return fail("%v", err)
		}
		run.url = u
	}
	addr, url, err := pickXMPPURL(cfg, remote, run.url, os.Getenv(thnode.NodeEnv))
	if err != nil {
		return fail("%v", err)
	}
	x, _, err := thnode.ReadXMPPSettings(cfg, addr)
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

// unpinnedOK lets an unpinned URL (a bare account) through.
func unpinnedOK(err error) error {
	if errors.Is(err, thnode.ErrXMPPUnpinned) {
		return nil
	}
	return err
}

// firstContact pins the nodes of the bare account an unpinned URL names
// (addr) that are online now: their URLs replace the unpinned one in the
// remote's configuration, as ssh adds a host key to known_hosts, and the
// user is told. It returns the URL of the first node.
func firstContact(ctx context.Context, cfg *gitcfg.Config, id *telehash.Identity, remote, url string, addr thnode.Addr, wait time.Duration, stderr io.Writer, log *slog.Logger) (string, error) {
	x, _, err := thnode.ReadXMPPSettings(cfg, addr)
	if err != nil {
		return "", err
	}
	nodes, err := thnode.XMPPFirstContact(ctx, id, x, addr.XMPP, addr.Repo, ".", wait, log)
	if err != nil {
		return "", err
	}
	key := "remote." + remote + ".url"
	// git passes the address without "xmpp::"; the remote's URL has it.
	old := thnode.XMPPScheme + strings.TrimPrefix(url, thnode.XMPPScheme)
	if !slices.Contains(cfg.GetAll(key), old) && slices.Contains(cfg.GetAll(key), url) {
		old = url
	}
	if slices.Contains(cfg.GetAll(key), old) {
		if err := thnode.PinXMPPRemote(ctx, ".", remote, old, nodes); err != nil {
			return "", err
		}
		for _, n := range nodes {
			fmt.Fprintf(stderr, "git-remote-xmpp: %s: first contact: pinned the key of its node %s in %s "+
				"(a node presenting another key will be refused; a new device of the account is not pinned later: add its URL)\n",
				addr.XMPP, n.Addr.Hashname, key)
		}
	} else {
		// A URL on the command line, or one rewritten by insteadOf:
		// nothing to write it to.
		for _, n := range nodes {
			fmt.Fprintf(stderr, "git-remote-xmpp: %s: first contact: its node %s presents key %s, not saved (no remote has this URL): pin it with the URL %s\n",
				addr.XMPP, n.Addr.Hashname, n.Addr.Keys[telehash.CS3a.String()], n.URL)
		}
	}
	return nodes[0].URL, nil
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
