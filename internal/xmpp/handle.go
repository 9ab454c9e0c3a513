package xmpp

import (
	"encoding/xml"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
)

// handle reads one incoming stanza. Following mellium's known bugs it
// never returns an error that is not a stanza.Error (that would end the
// session), never calls the session's Send (deadlock): replies go
// through t, and everything else is queued for the dispatch goroutine.
func (s *Session) handle(t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	var in inStanza
	if err := xml.NewTokenDecoder(xmlstream.MultiReader(xmlstream.Token(*start), t)).Decode(&in); err != nil {
		s.log.Debug("xmpp: undecodable stanza", "name", start.Name.Local, "err", err)
		return nil
	}
	from, err := jid.Parse(in.From)
	if in.From == "" || err != nil {
		from = jid.JID{}
	}
	switch start.Name.Local {
	case "message":
		s.handleMessage(from, &in)
	case "presence":
		s.handlePresence(t, from, &in)
	case "iq":
		// Roster pushes come from our own account (or no from): answer
		// them. Other requests get mellium's default error reply.
		switch {
		case in.Roster != nil && in.Type == "set" && (in.From == "" || from.Bare().Equal(s.account)):
			// (Wrap leaves out an empty to: Prosody warns about to="".)
			_, _ = xmlstream.Copy(t, stanza.IQ{ID: in.ID, To: from, Type: stanza.ResultIQ}.Wrap(nil))
		case in.Bytestream != nil && in.Type == "set":
			s.handleBytestream(t, from, &in)
		}
	}
	return nil
}

// allowed reports whether a bare JID may talk to our node.
func (s *Session) allowed(bare jid.JID) bool {
	return bare.Equal(s.account) || s.isPeer(bare.String())
}

// handleMessage takes the datagrams of a message: one in <d/> (every
// version sends that), or several in <b/> (a batch).
func (s *Session) handleMessage(from jid.JID, in *inStanza) {
	if s.cfg.noBatch {
		in.Batch = nil // a node of before batches does not know <b/>
	}
	if (in.Datagram == nil && in.Batch == nil) || in.Type == "error" || from.Resourcepart() == "" {
		return
	}
	if !s.allowed(from.Bare()) {
		s.dropped.Add(1)
		return
	}
	var pkts [][]byte
	if in.Datagram != nil {
		b, err := decodeDatagram(in.Datagram.Text)
		if err != nil {
			s.dropped.Add(1)
			return
		}
		pkts = append(pkts, b)
	}
	if in.Batch != nil {
		bs, err := decodeBatch(in.Batch.Text)
		if err != nil {
			s.log.Debug("xmpp: bad datagram batch", "from", from, "err", err)
			s.dropped.Add(1)
			return
		}
		pkts = append(pkts, bs...)
	}
	s.received.Add(uint64(len(pkts)))
	fs := from.String()
	s.queue(func() {
		if s.cfg.OnDatagram != nil {
			for _, b := range pkts {
				s.cfg.OnDatagram(fs, b)
			}
		}
	}, true)
}

func (s *Session) handlePresence(t xmlstream.TokenReadEncoder, from jid.JID, in *inStanza) {
	if from.Equal(jid.JID{}) {
		return
	}
	bare := from.Bare()
	switch in.Type {
	case "subscribe":
		// Accept configured accounts (and ask back for theirs); leave
		// everyone else's request unanswered: another login of this
		// account (a git-remote-xmpp pinning a peer its daemon does
		// not) may accept it, and an "unsubscribed" from us would
		// cancel that, and with it the peer's view of every login of
		// ours (the server sends it their unavailable presence: seen in
		// xmpp.txtar, Carol's node lost Bob's clone mid-handshake).
		if s.isPeer(bare.String()) {
			_, _ = xmlstream.Copy(t, stanza.Presence{To: bare, Type: stanza.SubscribedPresence}.Wrap(nil))
			_, _ = xmlstream.Copy(t, stanza.Presence{To: bare, Type: stanza.SubscribePresence}.Wrap(nil))
			s.log.Debug("xmpp: subscription accepted", "from", bare)
		} else {
			s.log.Info("xmpp: subscription request left unanswered: not a configured peer", "from", bare)
		}
		return
	case "", "unavailable", "error":
	default:
		return
	}
	if from.Resourcepart() == "" {
		return
	}
	if !s.allowed(bare) {
		s.noteOther(from, in) // peers.go
		return
	}
	s.mu.Lock()
	if from.Equal(s.local) {
		s.mu.Unlock()
		return
	}
	key := from.String()
	old, had := s.nodes[key]
	node, nodeOK := in.Node.node() // a key not matching the hashname: ignored
	var p Peer
	switch {
	case in.Type == "" && nodeOK:
		p = Peer{JID: key, Node: node, Online: true, Batch: in.Node.Batch == "1" && !s.cfg.noBatch}
		if had && old == p {
			s.mu.Unlock()
			return
		}
		s.nodes[key] = p
		if !had {
			// Show ourselves to the node we now see, by a directed
			// presence to its full JID (delivered without a
			// subscription; the server sends our unavailable one when
			// we leave). Seeing each other must not hang on both
			// subscriptions: when two nodes logged in together,
			// ejabberd 23.01 kept one's request pending and never
			// delivered it, nor its repeat, to the other, which then
			// never saw that node (TestIntegrationEjabberd).
			_, _ = xmlstream.Copy(t, stanza.Presence{To: from}.Wrap(s.presencePayload()))
		}
	case had:
		delete(s.nodes, key)
		p = Peer{JID: key, Node: old.Node}
	default:
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	s.queue(func() {
		if s.cfg.OnPeer != nil {
			s.cfg.OnPeer(p)
		}
	}, false)
}
