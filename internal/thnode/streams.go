package thnode

import (
	"context"
	"errors"
	"sync"

	"github.com/git-remote-daemon/git-remote-daemon/telehash"
)

// streams are the channels a node serves, each with the permission its
// service needs, so that a peer that loses a permission loses at once
// the streams that needed it.
type streams struct {
	mu sync.Mutex
	m  map[*telehash.Channel]*streamState
}

// streamState is one stream being served.
type streamState struct {
	cancel context.CancelFunc // ends the stream
	repo   *Repo              // the repository it serves, once known
	need   Permission         // Read until its request asks for more
	// demote, if set, ends the service that needed more than Read,
	// leaving the peer's session alone.
	demote func()
}

func (s *streams) add(c *telehash.Channel, cancel context.CancelFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[*telehash.Channel]*streamState{}
	}
	s.m[c] = &streamState{cancel: cancel, need: Read}
}

func (s *streams) remove(c *telehash.Channel) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, c)
}

// setRepo records the repository c serves.
func (s *streams) setRepo(c *telehash.Channel, r *Repo) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.m[c]; st != nil {
		st.repo = r
	}
}

// require records that c's service needs p, and how to end it when its
// peer keeps only Read. Called before p is checked, so that a revocation
// either happened before (and the check sees it) or finds the stream
// marked.
func (s *streams) require(c *telehash.Channel, p Permission, demote func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.m[c]; st != nil && p > st.need {
		st.need, st.demote = p, demote
	}
}

// needNothing marks c as a stream open to any peer (pairing).
func (s *streams) needNothing(c *telehash.Channel) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.m[c]; st != nil {
		st.need = None
	}
}

// served returns the channels served to peer ("" for every peer) with
// what each needs.
func (s *streams) served(peer telehash.Hashname) map[*telehash.Channel]streamState {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[*telehash.Channel]streamState{}
	for c, st := range s.m {
		if peer == "" || c.Peer() == peer {
			out[c] = *st
		}
	}
	return out
}

// Why a node ends the streams it serves; the peer, told one of these,
// forgets its session (see SessionGone).
const (
	reasonStopped = "node stopped"
	reasonRevoked = "not authorized"
)

// reasonPushRevoked cuts off the push stream of a peer that may still
// read but did not take in the ERROR frame saying its push was ended
// (see serveGit); not a reason to forget the session.
const reasonPushRevoked = "not authorized to push any more"

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

// Revoke enforces the peers' permissions on what is open: every stream
// served to a peer that no longer has the permission its service needs
// ends (a peer no longer allowed at all is told "not authorized"; the
// push of one that may still read but no longer write ends, it is told
// why, and keeps its session and other streams), and the sessions of
// the peers in lowered that lost every permission are forgotten, so
// that they must handshake again, which the mesh refuses.
func (n *Node) Revoke(lowered []telehash.Hashname) {
	for c, st := range n.streams.served("") {
		var has Permission
		if st.repo != nil {
			has = st.repo.Permission(c.Peer())
		} else {
			has = n.repos.permission(c.Peer())
		}
		if has >= st.need {
			continue
		}
		n.log.Info("ending a stream the peer is no longer allowed", "peer", c.Peer(), "needs", st.need, "has", has)
		if has >= Read && st.demote != nil {
			st.demote()
			continue
		}
		c.Abort(reasonRevoked)
		st.cancel()
	}
	for _, h := range lowered {
		if n.repos.permission(h) == None && !n.admit(h) {
			n.Mesh.Unlink(h)
		}
	}
}
