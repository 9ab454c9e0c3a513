package thnode

import "github.com/git-remote-daemon/git-remote-daemon/telehash"

// PresenceLink is a Link that tells when an xmpp:: node logs in: a
// watcher that failed on it waits for that rather than sleeping its
// backoff out while the node is back (a node's failures say nothing of
// its next login: often another process of its identity answered, a
// git-remote-xmpp of the peer's, or a session that timed out while the
// node restarted).
type PresenceLink interface {
	Link
	// Arrival returns a channel closed when the node hn next shows
	// presence (a login of it, or its presence sent again).
	Arrival(hn telehash.Hashname) <-chan struct{}
}

var _ PresenceLink = nodeLink{}

func (l nodeLink) Arrival(hn telehash.Hashname) <-chan struct{} { return l.n.xmpp.arrival(hn) }

// arrival returns the channel that arrived(hn) closes.
func (x *xmppState) arrival(hn telehash.Hashname) <-chan struct{} {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.arrivals == nil {
		x.arrivals = map[telehash.Hashname]chan struct{}{}
	}
	c := x.arrivals[hn]
	if c == nil {
		c = make(chan struct{})
		x.arrivals[hn] = c
	}
	return c
}

// arrived tells the waiters of arrival(hn) that hn showed presence.
func (x *xmppState) arrived(hn telehash.Hashname) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if c := x.arrivals[hn]; c != nil {
		close(c)
		delete(x.arrivals, hn)
	}
}
