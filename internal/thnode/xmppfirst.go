package thnode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/internal/gitexec"
	"github.com/git-remote-daemon/git-remote-daemon/internal/xmpp"
	"github.com/git-remote-daemon/git-remote-daemon/telehash"
)

// firstContactSettle is how long a first contact, once a node of the
// account showed up, waits for the account's other online nodes.
const firstContactSettle = 700 * time.Millisecond

// ErrXMPPNoKey is returned by a first contact whose account's nodes are
// online but announce no key (a git-remote-daemon of before first
// contact): the key has to be put in the URL.
var ErrXMPPNoKey = errors.New("its nodes do not announce their key")

// XMPPFirstContact is the first contact with an unpinned xmpp:: remote
// (a bare account, ParseXMPPURL's ErrXMPPUnpinned): it logs in as
// x.JID, announcing id's node, with account as its only peer, waits up
// to wait for the presence of the account's nodes (and a moment more for
// its other devices), and returns each node online then whose presence
// carries a key that hashes to its hashname, as a pinned Addr for repo.
// Presence whose key does not match was already left out by the
// session; nodes without a key make ErrXMPPNoKey when no node has one.
func XMPPFirstContact(ctx context.Context, id *telehash.Identity, x XMPPSettings, account, repo, dir string, wait time.Duration, log *slog.Logger) ([]PinnedNode, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return xmppFirstContact(ctx, id, xmpp.Config{JID: x.JID, Server: x.Server, TLS: x.TLS, CAFile: x.CA, AllowPlaintext: x.AllowPlaintext,
		PasswordFunc: xmpp.GitCredential{Dir: dir}.Fill, Logger: log}, account, repo, wait, log)
}

func xmppFirstContact(ctx context.Context, id *telehash.Identity, sc xmpp.Config, account, repo string, wait time.Duration, log *slog.Logger) ([]PinnedNode, error) {
	if bareJID(sc.JID) != account {
		sc.Peers = []string{account}
	}
	sc.Node = xmpp.NodeOf(string(id.Hashname()), id.Keys())
	sess, err := xmpp.Dial(ctx, sc)
	if err != nil {
		return nil, fmt.Errorf("xmpp account %s: %w", sc.JID, err)
	}
	defer sess.Close()
	nodes := func() []xmpp.Node {
		var out []xmpp.Node
		for _, p := range sess.Peers() {
			if p.Online && bareJID(p.JID) == account && p.Node.Hashname != string(id.Hashname()) {
				out = append(out, p.Node)
			}
		}
		return out
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	settle := time.Time{}
	for {
		if len(nodes()) > 0 && settle.IsZero() {
			settle = time.Now().Add(firstContactSettle)
		}
		if !settle.IsZero() && time.Now().After(settle) {
			break
		}
		select {
		case <-wctx.Done():
		case <-time.After(20 * time.Millisecond):
			continue
		}
		break
	}
	var addrs []PinnedNode
	var old []string
	for _, n := range nodes() {
		if n.Key == "" {
			old = append(old, n.Hashname)
			continue
		}
		u := pinnedXMPPURL(account, repo, n)
		a, err := ParseXMPPURL(u)
		if err != nil {
			log.Warn("xmpp: first contact: a node's presence makes no URL", "jid", account, "hashname", n.Hashname, "err", err)
			continue
		}
		addrs = append(addrs, PinnedNode{Addr: a, URL: u})
	}
	slices.SortFunc(addrs, func(a, b PinnedNode) int { return strings.Compare(string(a.Addr.Hashname), string(b.Addr.Hashname)) })
	switch {
	case len(addrs) > 0:
		return addrs, nil
	case len(old) > 0:
		return nil, fmt.Errorf("%s: first contact: %w (node %s runs an older git-remote-daemon): put its key in the URL, "+
			"xmpp::%s?cs3a=<key> (`git-remote-daemon address` on that node prints it)", account, ErrXMPPNoKey, old[0], account)
	case ctx.Err() != nil:
		return nil, ctx.Err()
	}
	return nil, fmt.Errorf("%s: first contact: no node of the account is online to pin its key (is its daemon running, and does it name %s in an xmpp:: remote?)",
		account, sc.JID)
}

// PinnedNode is a node pinned at first contact and its URL.
type PinnedNode struct {
	Addr Addr
	URL  string
}

// pinnedXMPPURL is the xmpp:: URL pinning the node n of account.
func pinnedXMPPURL(account, repo string, n xmpp.Node) string {
	s := XMPPScheme + account + "?cs3a=" + url.QueryEscape(n.Key)
	for _, f := range strings.Fields(n.Ims) {
		c, v, _ := strings.Cut(f, ":")
		s += "&im" + url.QueryEscape(c) + "=" + url.QueryEscape(v)
	}
	if repo != "" {
		s += "&repo=" + url.QueryEscape(repo)
	}
	return s
}

// PinXMPPRemote replaces the unpinned URL old of remote in the
// repository's configuration (git config, run in dir, so the file keeps
// its form) by the pinned URLs of nodes, one per node.
func PinXMPPRemote(ctx context.Context, dir, remote, old string, nodes []PinnedNode) error {
	key := "remote." + remote + ".url"
	for i, n := range nodes {
		u := n.URL
		args := []string{"config", "--replace-all", "--fixed-value", key, u, old}
		if i > 0 {
			args = []string{"config", "--add", key, u}
		}
		if _, err := gitexec.Output(ctx, dir, nil, args...); err != nil {
			return fmt.Errorf("pin %s: %w", key, err)
		}
	}
	return nil
}
