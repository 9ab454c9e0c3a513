package telehash

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// handshakeSchedule is when Link sends a handshake, from its start (spec:
// e3x/handshake.md "Resend/Timeout": resent at 1, 3, 7 and 15 s).
var handshakeSchedule = []time.Duration{0, time.Second, 3 * time.Second, 7 * time.Second, 15 * time.Second}

// peer is the mesh state of one remote hashname: its exchange, path,
// link status and channels.
type peer struct {
	m  *Mesh
	hn Hashname
	x  *Exchange

	// sessMu is held by a handshake from installing a new session's
	// keys until its channel table is in place, and by the read loop
	// (for reading) while it handles a channel packet.
	sessMu sync.RWMutex

	addr     atomic.Pointer[pathAddr] // current path
	lastRecv atomic.Int64             // unix nanos of the last authenticated packet
	// lastDirect is when the last fresh packet came over UDP, lastProbe
	// when a path probe was last sent (relay.go).
	lastDirect, lastProbe atomic.Int64

	mu      sync.Mutex
	linked  bool // Link was called: always allowed, re-linked while down
	paths   []pathAddr
	up      bool
	upWake  chan struct{} // closed and replaced when the link comes up
	lastKA  time.Time     // last keepalive or re-link handshake
	lastUse time.Time     // last time the link was in use (see inUseLocked)
	kept    int           // Keep holds
	downAt  time.Time
	chans   map[uint32]*Channel
	removed bool
	// remoteIDs are the channel ids the peer opened in this session.
	remoteIDs idWindow

	// confirmed: the peer showed it has our handshake of this session
	// (it sent a channel packet, or echoed our at).
	confirmed atomic.Bool
	// hsMu serializes handshakes (read loop and workers).
	hsMu         sync.Mutex
	courtesy     bucket // hsMu: answers to handshakes that changed nothing
	staleEph     [KeySize3a]byte
	staleAnswers int // hsMu: answers to stale handshakes with staleEph
	// curEph is the peer's current ephemeral key, indexed in Mesh.ephs
	// (guarded by Mesh.mu).
	curEph [KeySize3a]byte
	hasEph bool
	roam   roamState // roam.go
}

func newPeer(m *Mesh, hn Hashname, x *Exchange) *peer {
	now := time.Now()
	// downAt: a new peer is down since now, not since year 1, or tick
	// could remove it before its first handshake brings it up.
	return &peer{m: m, hn: hn, x: x, upWake: make(chan struct{}), chans: make(map[uint32]*Channel),
		lastUse: now, downAt: now}
}

// inUseLocked reports whether the link is in use: channels are open, or
// the owner keeps it (Mesh.Keep).
func (p *peer) inUseLocked() bool { return len(p.chans) > 0 || p.kept > 0 }

func (p *peer) isLinked() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.linked
}

func (p *peer) isUp() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.up
}

// received records a fresh authenticated packet from addr: the link is
// alive and addr is the peer's path. Never call it for a packet that may
// be a replay.
func (p *peer) received(from pathAddr) {
	now := time.Now().UnixNano()
	p.lastRecv.Store(now)
	if !p.preferPath(from, now) {
		return
	}
	if a := p.addr.Load(); a == nil || *a != from {
		f := from // a copy: taking from's address would allocate on every call
		p.addr.Store(&f)
		if a != nil && a.IsValid() {
			p.pathChanged()
		}
	}
}

// path returns the current path.
func (p *peer) path() pathAddr {
	if a := p.addr.Load(); a != nil {
		return *a
	}
	return pathAddr{}
}

// sendHandshake sends a (cloaked) handshake message to addrs.
func (p *peer) sendHandshake(msg []byte, addrs ...pathAddr) {
	for _, a := range addrs {
		c, err := Cloak(p.m.opts.Rand, msg, 1)
		if err != nil {
			p.m.log.Debug("telehash: cloak handshake", "err", err)
			return
		}
		if err := p.m.send(c, a); err == nil {
			p.m.stats.handshakesSent.Add(1)
		}
	}
}

// setUp marks the link up and wakes Link callers.
func (p *peer) setUp() {
	p.mu.Lock()
	if p.up {
		p.mu.Unlock()
		return
	}
	p.up = true
	p.lastKA = time.Now()
	p.lastUse = p.lastKA
	close(p.upWake)
	p.upWake = make(chan struct{})
	p.mu.Unlock()
	p.m.log.Debug("telehash: link up", "peer", p.hn)
	if f := p.m.opts.OnLink; f != nil {
		f(p.hn, true)
	}
	go p.requestPaths(p.m.ctx) // path_channel.go
}

// failChannels fails and forgets every channel.
func (p *peer) failChannels(err error) {
	p.mu.Lock()
	chans := p.chans
	p.chans = make(map[uint32]*Channel)
	p.mu.Unlock()
	for _, c := range chans {
		c.fail(err, "")
	}
}

// tick runs the keepalive and link-down logic. Only a link in use is
// kept alive, plus IdleTimeout after its last use (the next channel
// often follows soon); only a kept link is re-linked while down. An idle
// link is let go: without keepalives it goes down after LinkTimeout
// unless the peer keeps it up, and is re-linked on demand by the next
// OpenChannel.
func (p *peer) tick(now time.Time) {
	o := &p.m.opts
	last := time.Unix(0, p.lastRecv.Load())
	var down, keepalive, remove bool
	p.mu.Lock()
	if p.inUseLocked() {
		p.lastUse = now
	}
	idle := now.Sub(p.lastUse) >= o.IdleTimeout
	switch {
	case p.up && now.Sub(last) > o.LinkTimeout:
		p.up, down, p.downAt = false, true, now
	case p.up && !idle && now.Sub(p.lastKA) >= o.Keepalive:
		keepalive, p.lastKA = true, now
	case !p.up && p.kept > 0 && now.Sub(p.lastKA) >= o.Keepalive:
		keepalive, p.lastKA = true, now // try to re-link
	case !p.up && !p.linked && p.kept == 0 && len(p.chans) == 0 && now.Sub(p.downAt) > 2*o.LinkTimeout:
		remove, p.removed = !p.removed, true
	}
	addrs := p.targetsLocked()
	p.mu.Unlock()
	if down {
		p.m.log.Debug("telehash: link down", "peer", p.hn)
		p.failChannels(fmt.Errorf("%w: %s silent for %v", ErrLinkDown, p.hn, now.Sub(last).Round(time.Millisecond)))
		if f := o.OnLink; f != nil {
			f(p.hn, false)
		}
	}
	if keepalive {
		p.keepalive(addrs)
	}
	if keepalive || down {
		p.watchAnswer(now) // roam.go: probe a peer that does not answer
	}
	if remove {
		p.m.mu.Lock()
		if p.m.peers[p.hn] == p {
			p.m.buryLocked(p)
		}
		p.m.mu.Unlock()
	}
}

// keepalive sends a handshake with a new at to addrs.
func (p *peer) keepalive(addrs []pathAddr) {
	if _, err := p.x.Resync(); err != nil {
		return
	}
	if msg, err := p.x.Handshake(); err == nil {
		p.sendHandshake(msg, addrs...)
	}
}

// targetsLocked returns the current path and the linked paths.
func (p *peer) targetsLocked() []pathAddr {
	out := make([]pathAddr, 0, 1+len(p.paths))
	if a := p.path(); a.IsValid() {
		out = append(out, a)
	}
	for _, a := range p.paths {
		if len(out) == 0 || a != out[0] {
			out = append(out, a)
		}
	}
	return out
}

// Link links to a peer: it sends handshakes to its paths (resent at 1, 3,
// 7 and 15 s) until the peer answers, the HandshakeTimeout passes or ctx
// ends, and returns the peer's hashname. A linked peer is always
// answered; it is kept alive while the link is in use (open channels, or
// Keep), and let go when idle. Returns at once when the link is already
// up.
func (m *Mesh) Link(ctx context.Context, info LinkInfo) (Hashname, error) {
	hn, err := HashnameFromParts(info.Keys, info.Intermediates)
	if err != nil {
		return "", fmt.Errorf("telehash: link: %w", err)
	}
	if hn == m.Hashname() {
		return "", fmt.Errorf("%w: cannot link to self", ErrMalformed)
	}
	key, err := Base32Decode(info.Keys[CS3a.String()])
	if err != nil || len(key) != KeySize3a {
		return "", fmt.Errorf("%w: link needs a 3a key", ErrUnsupported)
	}
	var paths []pathAddr
	for _, pa := range info.Paths {
		if pa.Type != "udp4" && pa.Type != "udp6" {
			continue
		}
		ip, err := netip.ParseAddr(pa.IP)
		if err != nil || pa.Port <= 0 || pa.Port > 65535 {
			continue
		}
		paths = append(paths, udpPath(netip.AddrPortFrom(ip, uint16(pa.Port))))
	}
	for _, pi := range info.Pipes {
		mustComparablePipe(pi)
	}
	p, err := m.peer(hn, key)
	if err != nil {
		return "", err
	}
	p.mu.Lock()
	p.linked = true
	if len(paths) > 0 {
		// New UDP paths replace the old ones; pipes stay.
		for _, a := range p.paths {
			if a.isPipe() {
				paths = append(paths, a)
			}
		}
		p.paths = paths
	}
	p.mu.Unlock()
	for _, pi := range info.Pipes {
		p.addPath(pipePath(pi))
	}
	for _, pi := range m.routerPipes(hn, info.Paths) {
		p.addPath(pipePath(pi))
	}
	p.mu.Lock()
	n := len(p.paths)
	p.mu.Unlock()
	if n == 0 && !p.path().IsValid() {
		return "", fmt.Errorf("telehash: link to %s: no udp4/udp6 path nor pipe", hn)
	}
	return hn, p.link(ctx)
}

// link runs the handshake resend schedule until the link is up.
func (p *peer) link(ctx context.Context) error {
	if p.isUp() {
		return nil
	}
	// A new at: the peer drops handshakes not newer than the last it
	// got (replays); resends repeat these bytes.
	if _, err := p.x.Resync(); err != nil {
		return err
	}
	msg, err := p.x.Handshake()
	if err != nil {
		return err
	}
	start := time.Now()
	timeout := p.m.opts.HandshakeTimeout
	t := time.NewTimer(0)
	defer t.Stop()
	for i := 0; ; {
		p.mu.Lock()
		up, wake := p.up, p.upWake
		addrs := p.targetsLocked()
		p.mu.Unlock()
		if up {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("telehash: link to %s: %w", p.hn, ctx.Err())
		case <-p.m.ctx.Done():
			return ErrMeshClosed
		case <-wake:
		case <-t.C:
			if time.Since(start) >= timeout {
				return fmt.Errorf("%w: %s after %v", ErrLinkTimeout, p.hn, timeout)
			}
			p.sendHandshake(msg, addrs...)
			i++
			next := timeout
			if i < len(handshakeSchedule) {
				next = min(handshakeSchedule[i], timeout)
			}
			t.Reset(next - time.Since(start))
		}
	}
}

// Keep holds the link to a known peer (linked, or that linked to us) in
// use until release is called, as an open channel does: it gets
// keepalives while up and is re-linked while down. A watched peer is
// kept, for instance; a peer dialed for one fetch is not, and its link
// is let go once idle. release may be called more than once.
func (m *Mesh) Keep(peer Hashname) (release func(), err error) {
	p := m.lookup(peer)
	if p == nil {
		return nil, fmt.Errorf("%w: %s", ErrUnknownPeer, peer)
	}
	p.mu.Lock()
	p.kept++
	p.lastUse = time.Now()
	p.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			p.mu.Lock()
			p.kept--
			p.mu.Unlock()
		})
	}, nil
}

// Unlink forgets a peer: its channels fail with ErrLinkDown, it is no
// longer kept alive, and unless Allow admits it, its handshakes are no
// longer answered.
func (m *Mesh) Unlink(peer Hashname) {
	m.mu.Lock()
	p := m.peers[peer]
	if p != nil {
		m.buryLocked(p)
	}
	m.mu.Unlock()
	if p == nil {
		return
	}
	p.mu.Lock()
	wasUp := p.up
	p.up, p.linked, p.removed = false, false, true
	p.mu.Unlock()
	p.failChannels(fmt.Errorf("%w: %s unlinked", ErrLinkDown, peer))
	if f := m.opts.OnLink; f != nil && wasUp {
		f(peer, false)
	}
}

// ensureUp links to a known peer that is down (Link was called before,
// or it linked to us) before a channel is opened.
func (p *peer) ensureUp(ctx context.Context) error {
	if p.isUp() {
		return nil
	}
	p.mu.Lock()
	n := len(p.paths)
	p.mu.Unlock()
	if n == 0 && !p.path().IsValid() {
		return fmt.Errorf("%w: %s", ErrLinkDown, p.hn)
	}
	return p.link(ctx)
}
