package telehash

import (
	"bytes"
	"time"
)

// Handshakes are authenticated with X25519, which costs tens of
// microseconds: a single read loop doing it for every datagram is
// saturated by a few thousand handshakes a second from strangers. So the
// read loop does only cheap work: channel packets (secretbox) and
// handshakes of known sessions (the X25519 results are cached in the
// exchange) are handled at once; a handshake with an unknown ephemeral
// key passes cheap checks and a per-source token bucket, then waits in a
// bounded queue for a small pool of workers, and is dropped when the
// queue is full.

// Answers to handshakes that changed nothing (a resent first handshake,
// a restarted peer catching up) are limited per peer: courtesyBurst at
// once, courtesyRate a second; and maxStaleAnswers per stale handshake's
// key (a restarted peer's link resends it at 1, 3, 7 and 15 s).
const (
	courtesyRate    = 4
	courtesyBurst   = 10
	maxStaleAnswers = 5
)

// maxTombs bounds how many forgotten peers the mesh remembers, and
// maxIndexedEphs how many ephemeral keys of earlier sessions it indexes,
// to recognize their replayed handshakes.
const (
	maxTombs       = 1024
	maxIndexedEphs = 4096
)

// lowOrderPoints are the canonical encodings of the Curve25519 points of
// small order (libsodium's blocklist): X25519 with them gives zero, so a
// handshake carrying one is refused before any X25519.
var lowOrderPoints = [...][KeySize3a]byte{
	{0},
	{1},
	{0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4, 0x6a,
		0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00},
	{0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83, 0xef, 0x5b,
		0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f, 0x11, 0x57},
	{0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
}

// lowOrder reports whether k is one of lowOrderPoints.
func lowOrder(k *[KeySize3a]byte) bool {
	for i := range lowOrderPoints {
		if *k == lowOrderPoints[i] {
			return true
		}
	}
	return false
}

// hsJob is a handshake with an unknown ephemeral key, queued for a worker.
type hsJob struct {
	pkt  []byte
	from pathAddr
}

// tomb is what the mesh keeps of a forgotten peer: enough to know its
// handshakes of earlier sessions when they are replayed later.
type tomb struct {
	remoteAt uint64
	last     *[KeySize3a]byte // the last session's ephemeral key
	olds     [][KeySize3a]byte
	path     pathAddr
}

// receiveHandshakeDatagram handles a handshake message on the read loop
// (uncloaked, pkt reused afterwards): cheap checks, then handshakes of
// known sessions at once, and unknown ones, within their source's
// limit, through the worker queue.
func (m *Mesh) receiveHandshakeDatagram(pkt []byte, from pathAddr) {
	if len(pkt) < 3+MessageOverhead3a || len(pkt) > MaxPacketSize || pkt[2] != byte(CS3a) {
		m.stats.dropMalformed.Add(1)
		return
	}
	eph := [KeySize3a]byte(pkt[3 : 3+KeySize3a])
	if checkKey3a(eph[:]) != nil || lowOrder(&eph) {
		m.stats.dropMalformed.Add(1)
		return
	}
	m.mu.Lock()
	p, known := m.ephs[eph]
	m.mu.Unlock()
	if known {
		if p == nil { // an earlier session's: a replay
			m.stats.dropReplay.Add(1)
			return
		}
		h, err := p.x.openCurrent(pkt)
		if err != nil {
			m.stats.dropDecrypt.Add(1)
			return
		}
		p.handshake(h, from)
		return
	}
	if m.relayHandshake(pkt, from) {
		return
	}
	// Only handshakes needing X25519 count against their source's limit:
	// those of known sessions cost about what a channel packet does.
	if !m.limiter.allow(from, time.Now()) {
		m.stats.dropRateLimited.Add(1)
		return
	}
	m.hsPending.Add(1)
	select {
	case m.hsq <- hsJob{pkt: append([]byte(nil), pkt...), from: from}:
	default:
		m.hsPending.Add(-1)
		m.stats.dropOverload.Add(1)
	}
}

// handshakeWorker opens queued handshakes until the mesh closes.
func (m *Mesh) handshakeWorker() {
	defer m.wg.Done()
	for {
		select {
		case <-m.ctx.Done():
			return
		case j := <-m.hsq:
			m.receiveHandshake(j.pkt, j.from)
			if m.hsPending.Add(-1) == 0 {
				m.dropStash()
			}
		}
	}
}

// receiveHandshake decrypts a handshake with an unknown ephemeral key,
// applies the Allow policy, authenticates it and syncs the peer's
// exchange. Strangers cost one X25519, peers not yet known two.
func (m *Mesh) receiveHandshake(pkt []byte, from pathAddr) {
	m.stats.handshakesOpened.Add(1)
	h, body, err := openHandshakeInner(m.id, pkt)
	if err != nil {
		m.stats.dropDecrypt.Add(1)
		return
	}
	if h.Hashname == m.id.Hashname() {
		m.stats.dropHandshake.Add(1)
		return
	}
	m.mu.Lock()
	p := m.peers[h.Hashname]
	allow := m.opts.Allow
	closed := m.closed
	t, dead := m.tombs[h.Hashname]
	m.mu.Unlock()
	if closed {
		return
	}
	if (p == nil || !p.isLinked()) && (allow == nil || !allow(h.Hashname)) {
		m.stats.dropUnauthorized.Add(1)
		m.log.Debug("telehash: unauthorized handshake", "from", h.Hashname)
		return
	}
	var endpoint *[32]byte
	if p != nil && bytes.Equal(p.x.remoteKey[:], h.Key) {
		endpoint = &p.x.endpoint
	}
	if err := h.verify(m.id, body, endpoint); err != nil {
		m.stats.dropDecrypt.Add(1)
		return
	}
	if p == nil {
		// A forgotten peer's old handshakes stay replays; a stale one
		// is answered only where the peer was.
		if dead && t.replayed(h, from) {
			m.stats.dropReplay.Add(1)
			return
		}
		if p, err = m.peer(h.Hashname, h.Key); err != nil {
			m.stats.dropHandshake.Add(1)
			return
		}
	}
	p.handshake(h, from)
}

// replayed reports whether h, received from addr, is a replay of the
// forgotten peer's handshakes, or a stale one from elsewhere than where
// the peer was. The last session's key with a higher at resumes it.
func (t tomb) replayed(h *Handshake, from pathAddr) bool {
	for _, e := range t.olds {
		if e == h.Ephemeral {
			return true
		}
	}
	if h.At > t.remoteAt {
		return false
	}
	return (t.last != nil && *t.last == h.Ephemeral) || from != t.path
}

// handshake applies a verified handshake received from addr. Only a
// fresh one (a new session, or an at above the highest received) moves
// the path, keeps the link alive and is answered as usual. One that
// changed nothing is answered within a small budget per peer
// (courtesyRate), and only when the peer may need it:
//   - a stale one (a new ephemeral key never seen, with an at not above
//     the session's: a peer restarted within a second or two, maybe on
//     another port) gets our handshake with a raised at, up to
//     maxStaleAnswers times per key, so that it answers with a fresh at
//     and is taken up; its path and the live session stay meanwhile;
//   - a duplicate of the session's (its first handshake resent) only on
//     the peer's known path, and only while the peer has not shown it
//     got ours;
//   - a replay of an earlier session's, never.
func (p *peer) handshake(h *Handshake, from pathAddr) {
	from = p.m.viaRelay(p, from)
	p.hsMu.Lock()
	defer p.hsMu.Unlock()
	m := p.m
	now := time.Now()
	if h.Ephemeral != p.staleEph {
		p.staleEph, p.staleAnswers = h.Ephemeral, 0
	}
	p.courtesy.refill(now, courtesyRate, courtesyBurst)
	budget := p.courtesy.tokens >= 1
	// A new session's keys and its empty channel table go in together:
	// the read loop, which may decrypt the peer's channel packets with
	// the new keys as soon as sync installs them, waits (sessMu), so a
	// channel the peer opens at once in the new session is not put in
	// the old table and failed with it.
	p.sessMu.Lock()
	res, err := p.x.sync(h, budget && p.staleAnswers < maxStaleAnswers)
	var old map[uint32]*Channel
	if err == nil && res.NewSession && !res.Replay && !res.Stale {
		if f := m.testSessionSwitch; f != nil {
			f()
		}
		old = p.newSessionLocked(h.Ephemeral)
	}
	p.sessMu.Unlock()
	if err != nil {
		m.stats.dropHandshake.Add(1)
		m.log.Debug("telehash: handshake sync", "peer", p.hn, "err", err)
		return
	}
	m.log.Debug("telehash: handshake", "peer", p.hn, "at", h.At, "insync", res.InSync,
		"new", res.NewSession, "stale", res.Stale, "replay", res.Replay, "from", from)
	if res.Replay || res.Stale {
		m.stats.dropReplay.Add(1)
		answer := false
		switch {
		case !budget:
		case res.Stale:
			answer = p.staleAnswers < maxStaleAnswers
			p.staleAnswers++
		default:
			answer = p.isKnownPath(from) && !p.confirmed.Load()
		}
		if answer && p.courtesy.take(now, courtesyRate, courtesyBurst) {
			p.answer(from)
		}
		return
	}
	p.received(from)
	if res.NewSession {
		p.endSession(old)
	}
	if res.InSync {
		p.confirmed.Store(true) // it echoed our at: it has our handshake
	} else {
		p.answer(from)
	}
	p.setUp()
}

// answer sends our current handshake to addr.
func (p *peer) answer(to pathAddr) {
	msg, err := p.x.Handshake()
	if err != nil {
		p.m.log.Debug("telehash: handshake", "err", err)
		return
	}
	p.sendHandshake(msg, to)
}

// isKnownPath reports whether addr is the peer's current path or one it
// was linked with.
func (p *peer) isKnownPath(addr pathAddr) bool {
	if addr == p.path() {
		return true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, a := range p.paths {
		if a == addr {
			return true
		}
	}
	return false
}

// newSessionLocked indexes the peer's new ephemeral key and starts an
// empty channel table (channel ids restart with a session); it returns
// the previous session's channels, for endSession. p.sessMu is held.
func (p *peer) newSessionLocked(eph [KeySize3a]byte) map[uint32]*Channel {
	m := p.m
	m.stats.sessions.Add(1)
	m.mu.Lock()
	if p.hasEph {
		m.retireEphLocked(p.curEph)
	}
	p.curEph, p.hasEph = eph, true
	if m.peers[p.hn] == p {
		m.ephs[eph] = p
	}
	m.mu.Unlock()
	p.confirmed.Store(false)
	p.mu.Lock()
	chans := p.chans
	p.chans = make(map[uint32]*Channel)
	p.remoteIDs = idWindow{} // channel ids restart with a session
	p.mu.Unlock()
	return chans
}

// endSession fails the channels of the previous session and handles the
// channel packets kept for the new one.
func (p *peer) endSession(chans map[uint32]*Channel) {
	m := p.m
	for _, c := range chans {
		c.fail(ErrSessionReset, "")
	}
	m.unstash(p)
}

// retireEphLocked marks eph as an earlier session's: its handshakes are
// dropped on the read loop. The oldest retired keys are forgotten first.
func (m *Mesh) retireEphLocked(eph [KeySize3a]byte) {
	m.ephs[eph] = nil
	if len(m.oldEphs) >= maxIndexedEphs {
		if old := m.oldEphs[0]; m.ephs[old] == nil {
			delete(m.ephs, old)
		}
		m.oldEphs = m.oldEphs[1:]
	}
	m.oldEphs = append(m.oldEphs, eph)
}

// buryLocked forgets peer p (m.mu held), remembering its sessions in a
// tomb so their handshakes replayed later change nothing.
func (m *Mesh) buryLocked(p *peer) {
	if m.peers[p.hn] == p {
		delete(m.peers, p.hn)
		delete(m.tokens, p.x.Token())
	}
	if p.hasEph {
		// Its handshakes now go to the workers, checked against the tomb.
		delete(m.ephs, p.curEph)
		p.hasEph = false
	}
	at, last, olds := p.x.history()
	if last == nil && len(olds) == 0 {
		return
	}
	for _, e := range olds {
		if _, ok := m.ephs[e]; !ok {
			m.retireEphLocked(e)
		}
	}
	if _, ok := m.tombs[p.hn]; !ok {
		if len(m.tombOrder) >= maxTombs {
			delete(m.tombs, m.tombOrder[0])
			m.tombOrder = m.tombOrder[1:]
		}
		m.tombOrder = append(m.tombOrder, p.hn)
	}
	m.tombs[p.hn] = tomb{remoteAt: at, last: last, olds: olds, path: p.path()}
}

// resurrectLocked gives a new peer what its tomb remembers (m.mu held).
func (m *Mesh) resurrectLocked(p *peer) {
	t, ok := m.tombs[p.hn]
	if !ok {
		return
	}
	delete(m.tombs, p.hn)
	p.x.restoreHistory(t.remoteAt, t.last, t.olds)
	if t.path.IsValid() {
		p.addr.Store(&t.path)
	}
}
