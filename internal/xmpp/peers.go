package xmpp

import (
	"context"
	"fmt"
	"slices"

	mxmpp "mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/roster"
	"mellium.im/xmpp/stanza"
)

// maxOthers caps the nodes of accounts that are not peers whose
// presence is remembered (anyone may send us a directed presence).
const maxOthers = 1024

// subscribedTo returns the accounts whose presence the roster has us
// subscribed to.
func subscribedTo(ctx context.Context, xs *mxmpp.Session) (map[string]bool, error) {
	have := map[string]bool{}
	it := roster.Fetch(ctx, xs)
	defer it.Close()
	for it.Next() {
		item := it.Item()
		if item.Subscription == "to" || item.Subscription == "both" {
			have[item.JID.Bare().String()] = true
		}
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("xmpp: roster: %w", err)
	}
	return have, nil
}

// isPeer reports whether the bare JID is one of the peers.
func (s *Session) isPeer(bare string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peers[bare]
}

// peerList returns the peers' bare JIDs, sorted.
func (s *Session) peerList() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ps := make([]string, 0, len(s.peers))
	for p := range s.peers {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	return ps
}

// noteOther remembers the presence of a node of an account that is not
// a peer: its presence came because we are still subscribed to it (a
// peer of an earlier run), or it sent it to us. The server does not send
// it again when that account becomes a peer (AddPeers), so it is kept
// until then. Nothing else of that account is received.
func (s *Session) noteOther(from jid.JID, in *inStanza) {
	key := from.String()
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case in.Type == "" && nodeOK(in.Node):
		if _, had := s.others[key]; had || len(s.others) < maxOthers {
			n, _ := in.Node.node()
			s.others[key] = Peer{JID: key, Node: n, Online: true}
		}
	default:
		delete(s.others, key)
	}
}

// AddPeers makes more accounts peers of the live session, without
// logging in again (the session's own peers would see our node go and
// come back): their subscription requests are accepted from now on,
// they are asked for theirs, their nodes' presence and datagrams are
// received, and the nodes of theirs already seen in presence (a
// subscription from an earlier run, which the server does not announce
// again) become peer nodes at once, each shown our presence as a node
// seen for the first time is. Then OnPeer is called again for every node online,
// after the events already queued: the caller may accept nodes it
// refused before. While the session is disconnected the new peers are
// asked at the next login.
func (s *Session) AddPeers(ctx context.Context, peers ...string) error {
	var added []jid.JID
	for _, p := range peers {
		pj, err := jid.Parse(p)
		if err != nil {
			return fmt.Errorf("xmpp: peer %q: %w", p, err)
		}
		added = append(added, pj.Bare())
	}
	s.mu.Lock()
	var asks []jid.JID
	for _, bare := range added {
		if bare.Equal(s.account) || s.peers[bare.String()] {
			continue
		}
		s.peers[bare.String()] = true
		asks = append(asks, bare)
	}
	var shown []jid.JID
	for key, p := range s.others {
		pj, err := jid.Parse(key)
		if err != nil || !s.peers[pj.Bare().String()] {
			continue
		}
		delete(s.others, key)
		if !pj.Equal(s.local) {
			s.nodes[key] = p
			shown = append(shown, pj)
		}
	}
	cur, g := s.cur, s.guard
	s.mu.Unlock()
	s.replay()
	if cur == nil || len(asks)+len(shown) == 0 {
		return nil
	}
	err := g.bounded(deadline(ctx, sendTimeout), func() error {
		have, err := subscribedTo(ctx, cur)
		if err != nil {
			return err
		}
		for _, bare := range asks {
			if have[bare.String()] {
				continue
			}
			if err := cur.Send(ctx, stanza.Presence{To: bare, Type: stanza.SubscribePresence}.Wrap(nil)); err != nil {
				return fmt.Errorf("xmpp: subscribe to %s: %w", bare, err)
			}
		}
		for _, to := range shown {
			if err := cur.Send(ctx, stanza.Presence{To: to}.Wrap(s.presencePayload())); err != nil {
				return fmt.Errorf("xmpp: presence to %s: %w", to, err)
			}
		}
		return nil
	})
	if err != nil {
		// A stanza cut by the deadline leaves the stream broken: the
		// session reconnects, and asks the new peers at its login.
		_ = cur.Conn().Close()
	}
	return err
}

// replay queues OnPeer for every node online when the event runs: it
// comes after the events already queued, and a node that went meanwhile
// has its own event after it.
func (s *Session) replay() {
	s.queue(func() {
		if s.cfg.OnPeer == nil {
			return
		}
		for _, p := range s.Peers() {
			s.cfg.OnPeer(p)
		}
	}, false)
}

func nodeOK(e *nodeElem) bool { _, ok := e.node(); return ok }
