// Package th watches th:: remotes: it opens a "notify" stream to the
// remote node (over the daemon's telehash node) and follows its refs with
// the notify protocol, as the ssh transport does over ssh.
package th

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/internal/gitcfg"
	"github.com/git-remote-daemon/git-remote-daemon/internal/notify"
	"github.com/git-remote-daemon/git-remote-daemon/internal/thnode"
	"github.com/git-remote-daemon/git-remote-daemon/internal/transport"
	"github.com/git-remote-daemon/git-remote-daemon/telehash"
	"github.com/git-remote-daemon/git-remote-daemon/watch"
)

// Nodes gives the daemon's way to its identity's telehash node, which
// RELOAD may start, move or stop, and which moves when the process
// hosting it stops (thnode.Service).
type Nodes interface {
	// Link returns the way to the node, or nil.
	Link() thnode.Link
	// NextLink waits until a link other than old is up and returns it;
	// nil when ctx ends first.
	NextLink(ctx context.Context, old thnode.Link) thnode.Link
}

// Dialer makes th watchers over the daemon's current node.
type Dialer struct {
	Nodes Nodes
}

var _ transport.Dialer = (*Dialer)(nil)

func (d *Dialer) getNode() thnode.Link {
	if d.Nodes == nil {
		return nil
	}
	return d.Nodes.Link()
}

// NewWatcher returns a watcher of the th:: remote r. A remote may name
// several nodes (several remote.<name>.url values): it is watched on all
// of them (see multi).
func (d *Dialer) NewWatcher(r gitcfg.Remote, env transport.Env) (transport.Watcher, error) {
	var nodes []*watcher
	seen := map[string]bool{}
	for _, u := range env.Config.GetAll("remote." + r.Name + ".url") {
		u = env.Config.RewriteURL(u, false)
		if k := transport.Classify(u); k != transport.TH && k != transport.XMPP {
			continue
		}
		a, err := thnode.ParseAnyURL(u)
		if errors.Is(err, thnode.ErrXMPPUnpinned) {
			// The daemon does not make first contact itself (yet): the
			// user's first fetch pins the keys, as a first ssh does.
			return nil, fmt.Errorf("%s: %w: run `git fetch %s` once to pin the keys of the account's nodes online (first contact), then RELOAD",
				a.XMPP, err, r.Name)
		}
		if err != nil {
			return nil, err
		}
		if !seen[string(a.Hashname)] {
			seen[string(a.Hashname)] = true
			nodes = append(nodes, &watcher{d: d, addr: a, env: env})
		}
	}
	switch len(nodes) {
	case 0:
		a, err := thnode.ParseAnyURL(r.URL)
		if err != nil {
			return nil, err
		}
		return &watcher{d: d, addr: a, env: env}, nil
	case 1:
		return nodes[0], nil
	}
	return &multi{nodes: nodes}, nil
}

// watcher watches one node.
type watcher struct {
	d    *Dialer
	addr thnode.Addr
	env  transport.Env
	// lastNow is when an error last asked for an immediate retry, nows
	// how many did since ten seconds before.
	lastNow time.Time
	nows    int
}

// PingEvery and DeadAfter: as for ssh, a silent peer is given up on.
const (
	PingEvery = 3 * time.Second
	DeadAfter = 10 * time.Second
)

func (w *watcher) Watch(ctx context.Context, fn func(watch.Update) error) error {
	node := w.d.getNode()
	if node == nil {
		return errors.New("no telehash node: it did not start (see the ERROR * of the last start or RELOAD)")
	}
	var seen watch.Refs // nil until the first update
	report := func(u watch.Update) error {
		switch {
		case seen == nil:
		case u.First: // again, on a new node: only what changed meanwhile
			u = watch.Update{Refs: u.Refs, Changes: watch.Diff(seen, u.Refs)}
			if len(u.Changes) == 0 {
				seen = u.Refs
				return nil
			}
		}
		seen = u.Refs
		return fn(u)
	}
	for {
		// Taken before the attempt: a login of the node while it fails
		// (another process of its identity answering) ends the wait too.
		var arrival <-chan struct{}
		if pl, ok := node.(thnode.PresenceLink); ok && w.addr.XMPP != "" {
			arrival = pl.Arrival(w.addr.Hashname)
		}
		err := w.watch(ctx, node, report)
		if ctx.Err() != nil {
			return nil
		}
		select {
		case <-node.Done():
			// The daemon moved its node (RELOAD), or the process hosting
			// it stopped: follow it to the new one without a gap the
			// remote would see as a disconnection.
			if node = w.d.Nodes.NextLink(ctx, node); node == nil {
				return nil
			}
			continue
		default:
		}
		if errors.Is(err, errNoAnswer) || errors.Is(err, telehash.ErrChannelTimeout) || thnode.SessionGone(err) {
			// The session is likely stale (the peer restarted and does not
			// know it, or it told us it stopped or dropped us): forget it, so the next attempt handshakes afresh.
			// Not for other failures: the session may be carrying other
			// streams (a fetch) just fine.
			node.Unlink(w.addr.Hashname)
		}
		return w.retryNow(classify(err), arrival)
	}
}

// retryNow lets an xmpp:: node that restarted (its session reset) be
// dialed again at once, as one that went offline is: the dial waits for
// its presence. A reset at most three times within ten seconds: a node
// resetting again and again gets the daemon's backoff.
//
// Any other passing failure of an xmpp:: node waits its backoff or the
// node's next presence (arrival), whichever comes first: the failures
// may be those of another process of the peer's identity (a
// git-remote-xmpp of the peer's serving no repository, gone before it
// answered), and the node that serves us may log in any moment. Over a
// link that does not tell presence (arrival nil) the wait is capped.
func (w *watcher) retryNow(err error, arrival <-chan struct{}) error {
	var tr *transport.Transient
	if w.addr.XMPP == "" || !errors.As(err, &tr) {
		return err
	}
	if arrival != nil {
		tr.Wake = arrival
	} else {
		tr.Max = xmppRetryMax
	}
	if !tr.Now && errors.Is(err, telehash.ErrSessionReset) {
		if time.Since(w.lastNow) > 10*time.Second {
			w.nows = 0
		}
		w.nows++
		tr.Now = w.nows <= 3
		w.lastNow = time.Now()
	}
	return err
}

// xmppRetryMax caps the wait before an xmpp:: node is dialed again over
// a link that does not tell its presence.
const xmppRetryMax = 5 * time.Second

// errNoAnswer is wrapped when the peer stopped answering pings.
var errNoAnswer = notify.ErrNoAnswer

// classify marks the errors that are passing states of a peer as
// transport.Transient: peers come and go, their daemons start and stop,
// and nothing of it is for the user to act on. The texts are those of
// the peer's node (internal/thnode) aborting the stream.
func classify(err error) error {
	var ce *telehash.ChannelError
	waiting, now := "", false
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ce) && ce.Msg == "this node serves no repository":
		waiting = "the peer's daemon is not running"
	case errors.As(err, &ce) && ce.Msg == "node stopped":
		waiting = "the peer's daemon stopped"
	case errors.Is(err, thnode.ErrXMPPOffline), strings.Contains(err.Error(), thnode.ErrXMPPOffline.Error()), // also through the host's socket
		strings.Contains(err.Error(), thnode.ReasonXMPPOffline):
		// The next Watch waits for its presence: no backoff on top.
		waiting, now = "the peer's node is offline", true
	case errors.Is(err, thnode.ErrXMPPNotPinned), strings.Contains(err.Error(), thnode.ErrXMPPNotPinned.Error()):
		waiting = "this identity's node has not logged in with this remote's peers yet"
	case errors.Is(err, telehash.ErrSessionReset):
		waiting = "the peer restarted"
	case errors.Is(err, errNoAnswer), errors.Is(err, telehash.ErrChannelTimeout),
		errors.Is(err, telehash.ErrLinkTimeout), errors.Is(err, telehash.ErrLinkDown):
		waiting = "the peer does not answer"
	default:
		return err
	}
	return &transport.Transient{Err: err, Waiting: waiting, Now: now}
}

func (w *watcher) watch(ctx context.Context, node thnode.Link, fn func(watch.Update) error) error {
	// A URL with only a hashname: Dial waits until that node links to us.
	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-node.Done():
			cancel()
		case <-dctx.Done():
		}
	}()
	s, err := node.Dial(dctx, w.addr, thnode.ServiceNotify, true)
	if err != nil {
		if dctx.Err() != nil {
			return nil
		}
		return err
	}
	defer s.Close()
	c, err := notify.NewClient(ctx, s, s)
	if err != nil {
		return fmt.Errorf("%s: %w", w.addr.Hashname, err)
	}
	sub, err := c.Watch("w1", ".")
	if err != nil {
		return err
	}
	kctx, stopKeepalive := context.WithCancel(ctx)
	defer stopKeepalive()
	silent := make(chan error, 1)
	go func() { silent <- c.Keepalive(kctx, PingEvery, DeadAfter) }()
	for {
		select {
		case <-ctx.Done():
			s.Abort("closed")
			return nil
		case <-node.Done():
			s.Abort("closed")
			return nil
		case err := <-silent:
			if errors.Is(err, notify.ErrNoAnswer) {
				s.Abort("no answer")
				return fmt.Errorf("%s: %w", w.addr.Hashname, err)
			}
			if err == nil {
				return nil
			}
			return err
		case e, ok := <-sub.Events():
			if !ok {
				if err := c.Err(); err != nil {
					return err
				}
				return errors.New("watch ended")
			}
			if e.Err != nil {
				return e.Err
			}
			if err := fn(e.Update); err != nil {
				return err
			}
		}
	}
}
