package thnode

import (
	"context"
	"errors"
	"sync"

	"github.com/git-remote-daemon/git-remote-daemon/telehash"
)

// streams are the channels a node serves, so that a peer that loses its
// permission loses them at once.
type streams struct {
	mu sync.Mutex
	m  map[*telehash.Channel]context.CancelFunc
}

func (s *streams) add(c *telehash.Channel, cancel context.CancelFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[*telehash.Channel]context.CancelFunc{}
	}
	s.m[c] = cancel
}

func (s *streams) remove(c *telehash.Channel) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, c)
}

// served returns the channels served to peer ("" for every peer).
func (s *streams) served(peer telehash.Hashname) map[*telehash.Channel]context.CancelFunc {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[*telehash.Channel]context.CancelFunc{}
	for c, cancel := range s.m {
		if peer == "" || c.Peer() == peer {
			out[c] = cancel
		}
	}
	return out
}

// Why a node ends the streams it serves; the peer, told so, forgets its
// session (see SessionGone).
const (
	reasonStopped = "node stopped"
	reasonRevoked = "not authorized"
)

// SessionGone reports whether err says that the node at the other end
// stopped or revoked us: our session with it is gone on its side, so the
// next attempt must handshake afresh (Mesh.Unlink) rather than open
// channels that nobody reads.
func SessionGone(err error) bool {
	var ce *telehash.ChannelError
	return errors.As(err, &ce) && (ce.Msg == reasonStopped || ce.Msg == reasonRevoked)
}

// servedTo counts the streams the node serves to peer.
func (n *Node) servedTo(peer telehash.Hashname) int { return len(n.streams.served(peer)) }

// Revoke enforces the allow list on what is open: every stream served to
// a peer Allow now refuses ends (the peer is told "not authorized"), and
// the sessions of the revoked peers are forgotten, so that they must
// handshake again, which Allow refuses.
func (n *Node) Revoke(revoked []telehash.Hashname) {
	for c, cancel := range n.streams.served("") {
		if !n.opts.Allow(c.Peer()) {
			n.log.Info("ending the stream of a peer no longer authorized", "peer", c.Peer())
			c.Abort(reasonRevoked)
			cancel()
		}
	}
	for _, h := range revoked {
		if !n.opts.Allow(h) {
			n.Mesh.Unlink(h)
		}
	}
}
