package telehash

// maxStash bounds the channel packets kept while handshakes are opened.
const maxStash = 64

// A peer that restarts sends its new handshake and, as soon as our answer
// comes back, channel packets of the new session. The handshake, with a
// new ephemeral key, is opened by a worker, while channel packets are
// handled on the read loop: one can arrive before the session exists.
// Rather than drop it (and wait for a resend), a channel packet that
// fails to decrypt while handshakes are being opened is kept, a few at
// most, and tried again when its peer's new session starts.

type stashed struct {
	p    *peer
	pkt  []byte
	from pathAddr
}

// stashChannel keeps a channel packet of p that failed to decrypt, if
// handshakes are being opened; it reports whether it kept (or, the
// session having changed meanwhile, handled) the packet.
func (m *Mesh) stashChannel(p *peer, pkt []byte, from pathAddr) bool {
	m.stashMu.Lock()
	// The session may have changed since the packet failed: try again
	// under the lock that newSession drains the stash with. Before
	// looking at hsPending: the worker may have started the session and
	// counted its handshake done since the packet failed.
	if inner, err := p.x.openChannelFast(pkt); err == nil {
		m.stashMu.Unlock()
		p.receiveDecrypted(inner, from)
		return true
	}
	if m.hsPending.Load() == 0 {
		m.stashMu.Unlock()
		return false
	}
	if len(m.stash) >= maxStash {
		m.stash[0] = stashed{}
		m.stash = m.stash[1:]
		m.stats.dropDecrypt.Add(1)
	}
	m.stash = append(m.stash, stashed{p: p, pkt: append([]byte(nil), pkt...), from: from})
	m.stashMu.Unlock()
	return true
}

// unstash handles the kept channel packets of p (its session changed).
func (m *Mesh) unstash(p *peer) {
	m.stashMu.Lock()
	var mine []stashed
	kept := m.stash[:0]
	for _, s := range m.stash {
		if s.p == p {
			mine = append(mine, s)
		} else {
			kept = append(kept, s)
		}
	}
	clear(m.stash[len(kept):])
	m.stash = kept
	m.stashMu.Unlock()
	for _, s := range mine {
		inner, err := p.x.openChannelFast(s.pkt)
		if err != nil {
			m.stats.dropDecrypt.Add(1)
			continue
		}
		p.receiveDecrypted(inner, s.from)
	}
	m.flushAcks()
}

// dropStash drops the kept packets: no handshake is being opened.
func (m *Mesh) dropStash() {
	m.stashMu.Lock()
	n := len(m.stash)
	clear(m.stash)
	m.stash = m.stash[:0]
	m.stashMu.Unlock()
	m.stats.dropDecrypt.Add(uint64(n))
}
