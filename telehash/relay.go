package telehash

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// The client side of routing: a relayPipe reaches a peer through a
// router. Handshakes sent over it go in peer requests to the router
// (which hands them to the peer in a connect); channel packets go to the
// router as they are, and it forwards them by token (automatic bridging,
// spec: channels/peer.md). Packets the router forwards arrive from its
// address and are taken as arriving over the pipe.

// ErrNoRouter reports a relay whose router is not linked.
var ErrNoRouter = errors.New("telehash: router not linked")

// directHold is how long after the last fresh packet over UDP a packet
// over a pipe does not take the path over: a direct path that works is
// preferred to a relay.
const directHold = 2 * time.Second

// probeInterval spaces path probes (handshakes to every path of a peer
// whose current path stopped answering).
const probeInterval = time.Second

// punchSchedule is when handshakes are sent to the addresses a router
// saw a new peer at, from the introduction (hole punching).
var punchSchedule = []time.Duration{0, 100 * time.Millisecond, 300 * time.Millisecond,
	700 * time.Millisecond, 1500 * time.Millisecond, 3 * time.Second, 5 * time.Second}

// relayPipe is the Pipe to peer through router.
type relayPipe struct {
	m      *Mesh
	router Hashname
	peer   Hashname
}

var _ Pipe = (*relayPipe)(nil)

func (r *relayPipe) String() string { return "relay via " + string(r.router) }

// Send sends a packet to the peer through the router.
func (r *relayPipe) Send(b []byte) error {
	rp := r.m.lookup(r.router)
	if rp == nil || !rp.isUp() {
		return fmt.Errorf("%w: %s", ErrNoRouter, r.router)
	}
	buf := make([]byte, len(b), len(b)+cloakSpare)
	copy(buf, b)
	pkt, err := uncloakInPlace(buf)
	if err != nil || len(pkt) < 2 {
		return fmt.Errorf("%w: relay of a packet that is not a LOB", ErrMalformed)
	}
	if pkt[0] == 0 && pkt[1] == 0 {
		return r.m.send(b, rp.path())
	}
	req := &peerRequest{Peer: r.peer, Body: pkt}
	return rp.sendOpen(req.packet())
}

// maxRelayPipes bounds the relay pipes a router's connects create for
// peers not known yet.
const maxRelayPipes = 4096

// relayPipeCount returns the number of relay pipes.
func (m *Mesh) relayPipeCount() int {
	m.routing.mu.Lock()
	defer m.routing.mu.Unlock()
	return len(m.routing.pipes)
}

// relayPipe returns the pipe to peer through router (one per pair, so
// that it compares equal).
func (m *Mesh) relayPipe(router, peer Hashname) *relayPipe {
	r := m.routing
	r.mu.Lock()
	defer r.mu.Unlock()
	k := [2]Hashname{router, peer}
	if p := r.pipes[k]; p != nil {
		return p
	}
	p := &relayPipe{m: m, router: router, peer: peer}
	r.pipes[k] = p
	r.byPeer[peer] = append(r.byPeer[peer], p)
	return p
}

// routerPipes returns the relay pipes to peer hn: through the routers of
// its "peer" paths and the default routers.
func (m *Mesh) routerPipes(hn Hashname, paths []Path) []Pipe {
	var out []Pipe
	seen := map[Hashname]bool{hn: true, m.Hashname(): true}
	add := func(router Hashname) {
		if !seen[router] {
			seen[router] = true
			out = append(out, m.relayPipe(router, hn))
		}
	}
	for _, pa := range paths {
		if pa.Type == "peer" {
			if r, err := ParseHashname(string(pa.HN)); err == nil {
				add(r)
			}
		}
	}
	m.routing.mu.Lock()
	routers := append([]Hashname(nil), m.routing.routers...)
	m.routing.mu.Unlock()
	for _, r := range routers {
		add(r)
	}
	return out
}

// viaRelay returns the path a packet of peer p received from 'from'
// came by: one of p's relay pipes when from is its router's path.
func (m *Mesh) viaRelay(p *peer, from pathAddr) pathAddr {
	r := m.routing
	r.mu.Lock()
	pipes := r.byPeer[p.hn]
	r.mu.Unlock()
	for _, rp := range pipes {
		if router := m.lookup(rp.router); router != nil && router.path() == from {
			return pipePath(rp)
		}
	}
	return from
}

// preferPath reports whether a fresh packet from 'from' may become the
// current path: a UDP path always, a pipe only when no fresh packet came
// over UDP for directHold (a working direct path beats a relay).
func (p *peer) preferPath(from pathAddr, now int64) bool {
	if !from.isPipe() {
		p.lastDirect.Store(now)
		return true
	}
	cur := p.addr.Load()
	if cur == nil || cur.isPipe() || !cur.IsValid() {
		return true
	}
	return time.Duration(now-p.lastDirect.Load()) >= directHold
}

// pathChanged forgets what the reliable channels learnt of the old
// path's round trip: the new one may be much shorter (a relay on the
// same LAN) and its acks would be taken for delayed ones.
func (p *peer) pathChanged() {
	p.mu.Lock()
	chans := make([]*Channel, 0, len(p.chans))
	for _, c := range p.chans {
		chans = append(chans, c)
	}
	p.mu.Unlock()
	for _, c := range chans {
		if c.reliable {
			c.mu.Lock()
			c.snd.minRTT = 0
			c.mu.Unlock()
		}
	}
}

// probePaths is called when a reliable channel retransmits: if nothing
// came from the peer for a while and it has other paths, a handshake
// with a new at goes to every path (at most every probeInterval), so
// that a dead path is left for one that works.
func (p *peer) probePaths(now time.Time) {
	if time.Duration(now.UnixNano()-p.lastRecv.Load()) < probeInterval {
		return
	}
	last := p.lastProbe.Load()
	if time.Duration(now.UnixNano()-last) < probeInterval || !p.lastProbe.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	p.mu.Lock()
	targets := p.targetsLocked()
	p.mu.Unlock()
	if len(targets) > 1 {
		p.keepalive(targets)
	}
}

// LinkVia links to a peer as Link does, also through the given routers
// (as "peer" paths of info, spec: channels/path.md). The routers must be
// linked already (Link or AddRouter).
func (m *Mesh) LinkVia(ctx context.Context, info LinkInfo, routers ...Hashname) (Hashname, error) {
	paths := append([]Path(nil), info.Paths...)
	for _, r := range routers {
		paths = append(paths, Path{Type: "peer", HN: r})
	}
	info.Paths = paths
	return m.Link(ctx, info)
}

// AddRouter links to a router and uses it for every peer linked from now
// on (a default router, spec: routing.md): Link also tries each peer
// through it. The link to the router is kept up, with keepalives every
// RouterKeepalive so that a NAT keeps its mapping, until ctx ends or the
// mesh closes.
func (m *Mesh) AddRouter(ctx context.Context, info LinkInfo) (Hashname, error) {
	hn, err := m.Link(ctx, info)
	if err != nil {
		return "", fmt.Errorf("telehash: router: %w", err)
	}
	release, err := m.Keep(hn)
	if err != nil {
		return "", err
	}
	r := m.routing
	r.mu.Lock()
	known := false
	for _, h := range r.routers {
		known = known || h == hn
	}
	if !known {
		r.routers = append(r.routers, hn)
	}
	r.mu.Unlock()
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		release()
		return "", ErrMeshClosed
	}
	m.wg.Add(1)
	m.mu.Unlock()
	go func() {
		defer m.wg.Done()
		defer release()
		defer m.removeRouter(hn)
		m.keepRouter(ctx, hn)
	}()
	return hn, nil
}

// removeRouter stops using hn as a default router.
func (m *Mesh) removeRouter(hn Hashname) {
	r := m.routing
	r.mu.Lock()
	defer r.mu.Unlock()
	kept := r.routers[:0]
	for _, h := range r.routers {
		if h != hn {
			kept = append(kept, h)
		}
	}
	r.routers = kept
}

// keepRouter sends keepalives to a router every RouterKeepalive.
func (m *Mesh) keepRouter(ctx context.Context, hn Hashname) {
	t := time.NewTicker(m.opts.RouterKeepalive)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.ctx.Done():
			return
		case <-t.C:
			p := m.lookup(hn)
			if p == nil || !p.isUp() {
				continue // the mesh's monitor re-links a kept peer
			}
			p.mu.Lock()
			targets := p.targetsLocked()
			p.mu.Unlock()
			p.keepalive(targets)
		}
	}
}

// Routers returns the default routers.
func (m *Mesh) Routers() []Hashname {
	m.routing.mu.Lock()
	defer m.routing.mu.Unlock()
	return append([]Hashname(nil), m.routing.routers...)
}

// handleConnect takes a router's introduction (spec: channels/connect.md):
// the body, a handshake of the peer, is handled as arriving over the
// relay pipe through that router (the usual authentication and Allow
// policy apply); once the peer is up, handshakes go to the addresses the
// router saw it at for a few seconds (hole punching).
func (m *Mesh) handleConnect(c *Channel) {
	defer c.fail(ErrChannelClosed, "")
	rs := &m.stats.routing
	router := c.p.hn
	req, err := parseConnectRequest(c.OpenPacket())
	if err != nil || req.Peer == "" || req.Peer == m.Hashname() || req.Peer == router {
		rs.connectRefused.Add(1)
		m.log.Debug("telehash: connect refused", "from", router, "err", err)
		return
	}
	pkt, err := DecodePacket(req.Body)
	if err != nil || len(pkt.Head) != 1 {
		// Unencrypted key packets (first introductions) are not taken:
		// our links always know the peer's keys.
		rs.connectRefused.Add(1)
		return
	}
	if m.relayPipeCount() >= maxRelayPipes && m.lookup(req.Peer) == nil {
		rs.connectRefused.Add(1)
		return
	}
	rs.connects.Add(1)
	pipe := m.relayPipe(router, req.Peer)
	m.AddPipe(req.Peer, pipe)
	b := make([]byte, len(req.Body), len(req.Body)+cloakSpare)
	copy(b, req.Body)
	m.receivePath(b, pipePath(pipe))
	var addrs []netip.AddrPort
	for _, pa := range req.Paths {
		if a, ok := udpPathOf(pa); ok {
			addrs = append(addrs, a)
		}
	}
	if len(addrs) > 0 {
		m.punch(req.Peer, addrs)
	}
}

// punch sends handshakes to addrs, paths the router saw peer at, on
// punchSchedule, until a fresh packet comes from the peer over a direct
// path; one punch per peer and set of addresses at a time. A connect
// that names other addresses (the peer's node restarted, or another
// process of its identity took over, while the last punch still ran)
// starts a punch of its own: the running one aims at addresses nobody
// answers at any more. The addresses become paths of the peer, so that
// later keepalives try them again.
func (m *Mesh) punch(hn Hashname, addrs []netip.AddrPort) {
	key := punchKey(hn, addrs)
	r := m.routing
	r.mu.Lock()
	if r.punches[key] || len(r.punches) >= maxPunches {
		r.mu.Unlock()
		return
	}
	r.punches[key] = true
	r.mu.Unlock()
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.wg.Add(1)
	m.mu.Unlock()
	go func() {
		defer m.wg.Done()
		defer func() {
			r.mu.Lock()
			delete(r.punches, key)
			r.mu.Unlock()
		}()
		start := time.Now()
		added := false
		for _, at := range punchSchedule {
			select {
			case <-m.ctx.Done():
				return
			case <-time.After(time.Until(start.Add(at))):
			}
			p := m.lookup(hn)
			if p == nil || !p.isUp() {
				continue // the handshake is still being opened, or refused
			}
			// Direct already: the current path is a UDP one that
			// answered since the introduction, or one of addrs that
			// answered lately (a direct path elsewhere, of an older
			// session, may be dead: its node is gone).
			if cur := p.path(); cur.IsValid() && !cur.isPipe() {
				last := p.lastDirect.Load()
				if last >= start.UnixNano() || (slices.Contains(addrs, cur.udp) && time.Since(time.Unix(0, last)) < directHold) {
					return
				}
			}
			if !added {
				added = true
				for _, a := range addrs {
					p.addPath(udpPath(a))
				}
			}
			targets := make([]pathAddr, len(addrs))
			for i, a := range addrs {
				targets[i] = udpPath(a)
			}
			m.stats.routing.punches.Add(uint64(len(targets)))
			m.log.Debug("telehash: punching", "peer", hn, "to", addrs)
			p.keepalive(targets)
		}
	}()
}

// maxPunches bounds the punches running at once (each connect may start
// one).
const maxPunches = 256

// punchKey names a punch: the peer and the addresses it aims at.
func punchKey(hn Hashname, addrs []netip.AddrPort) string {
	var b strings.Builder
	b.WriteString(string(hn))
	for _, a := range addrs {
		b.WriteByte(' ')
		b.WriteString(a.String())
	}
	return b.String()
}
