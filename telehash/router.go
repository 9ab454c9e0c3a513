package telehash

import (
	"sync"
	"sync/atomic"
	"time"
)

// A router introduces two peers it has links with and relays their
// packets while they have no direct path (spec: routing.md). Node A
// opens a "peer" channel to router R naming peer B, with A's handshake
// as its body; R sends B a "connect" channel carrying that handshake,
// A's hashname and the address R sees A at; B answers the same way
// through R. Each side then tries the other's address (hole punching),
// and meanwhile channel packets go through R: sent to R's address as
// they are, still end-to-end encrypted, and forwarded by R by their
// routing token (the one R saw in that side's handshake), as telehash-js
// does. R reads nothing of them.

// setRoutingDefaults sets the defaults of the routing options.
func (o *MeshOptions) setRoutingDefaults() {
	if o.RelayRate == 0 {
		o.RelayRate = DefaultRelayRate
	}
	if o.MaxRelays <= 0 {
		o.MaxRelays = 1024
	}
	if o.RouterKeepalive <= 0 {
		o.RouterKeepalive = min(20*time.Second, o.Keepalive)
	}
}

// DefaultRelayRate is the default RelayRate: 4 MiB/s per pair of peers.
const DefaultRelayRate = 4 << 20

// SetRelayRate sets the bound on the bytes a second relayed for one pair
// of peers (MeshOptions.RelayRate: 0 for the default, negative for no
// bound), for the packets forwarded from now on.
func (m *Mesh) SetRelayRate(rate int) {
	if rate == 0 {
		rate = DefaultRelayRate
	}
	m.routing.rate.Store(int64(rate))
}

// RelayRate returns the bound on the bytes a second relayed for one pair
// of peers; negative when there is none.
func (m *Mesh) RelayRate() int { return int(m.routing.rate.Load()) }

// RoutingStats count routing events (a Stats part).
type RoutingStats struct {
	PeerRequests   uint64 // peer requests received
	PeerRefused    uint64 // peer requests refused (not a router, not allowed, unknown peer)
	Connects       uint64 // connect requests received and handed to the mesh
	ConnectRefused uint64 // connect requests dropped (malformed, not a handshake)
	Relayed        uint64 // packets forwarded for others
	RelayDropped   uint64 // packets not forwarded: over the rate, from the wrong source, no path
	Punches        uint64 // hole-punching handshakes sent
}

type routingStats struct {
	peerRequests, peerRefused, connects, connectRefused, relayed, relayDropped, punches atomic.Uint64
}

func (s *routingStats) snapshot() RoutingStats {
	return RoutingStats{
		PeerRequests: s.peerRequests.Load(), PeerRefused: s.peerRefused.Load(),
		Connects: s.connects.Load(), ConnectRefused: s.connectRefused.Load(),
		Relayed: s.relayed.Load(), RelayDropped: s.relayDropped.Load(), Punches: s.punches.Load(),
	}
}

// route is what a router knows of one side of an introduction: channel
// packets with token go to owner, and must come from partner; the
// owner's handshakes (sent to the router as they are, by telehash-js)
// go to partner.
type route struct {
	owner, partner Hashname
	pair           *relayBudget
	last           atomic.Int64 // unix nanos of the last use
}

// relayBudget is the byte budget of a pair of peers (both directions).
type relayBudget struct {
	mu sync.Mutex
	b  bucket
}

// routing is the mesh's routing state (both roles).
type routing struct {
	mu     sync.Mutex
	routes map[Token]*route
	pairs  map[[2]Hashname]*relayBudget
	n      atomic.Int32 // len(routes), read without the lock
	rate   atomic.Int64 // bytes a second per pair (RelayRate); negative: no bound

	// client side (relay.go)
	pipes   map[[2]Hashname]*relayPipe // by router, peer
	byPeer  map[Hashname][]*relayPipe
	routers []Hashname      // default routers (AddRouter)
	punches map[string]bool // running punches (relay.go punchKey)
}

// initRouting registers the peer and connect handlers.
func (m *Mesh) initRouting() {
	m.routing = &routing{routes: make(map[Token]*route), pairs: make(map[[2]Hashname]*relayBudget),
		pipes: make(map[[2]Hashname]*relayPipe), byPeer: make(map[Hashname][]*relayPipe),
		punches: make(map[string]bool)}
	m.routing.rate.Store(int64(m.opts.RelayRate))
	m.handlers[PeerType] = m.handlePeer
	m.handlers[ConnectType] = m.handleConnect
}

// routesFor reports whether the router introduces hn.
func (m *Mesh) routesFor(hn Hashname) bool {
	if !m.opts.Router {
		return false
	}
	return m.opts.RouteFor == nil || m.opts.RouteFor(hn)
}

// handlePeer answers a peer request (spec: channels/peer.md): when
// routing for both sides, it sends the peer a connect with the body, the
// requester's hashname and its address, and remembers the handshake's
// token to relay packets. Nothing is ever answered to the requester.
func (m *Mesh) handlePeer(c *Channel) {
	defer c.fail(ErrChannelClosed, "")
	rs := &m.stats.routing
	rs.peerRequests.Add(1)
	from := c.p
	req, err := parsePeerRequest(c.OpenPacket())
	refuse := func(why string, args ...any) {
		rs.peerRefused.Add(1)
		m.log.Debug("telehash: peer request refused", append([]any{"from", from.hn, "why", why}, args...)...)
	}
	if err != nil {
		refuse("malformed", "err", err)
		return
	}
	if !m.routesFor(from.hn) || !m.routesFor(req.Peer) {
		refuse("not allowed", "peer", req.Peer)
		return
	}
	to := m.lookup(req.Peer)
	if to == nil || to == from || !to.isUp() {
		refuse("peer not linked", "peer", req.Peer)
		return
	}
	if pkt, err := DecodePacket(req.Body); err == nil && len(pkt.Head) == 1 {
		if tok, err := TokenFromBody(pkt.Body); err == nil {
			if !m.addRoute(tok, from.hn, to.hn) {
				refuse("too many routes", "peer", req.Peer)
				return
			}
		}
	}
	conn := &connectRequest{Peer: from.hn, Body: req.Body}
	if a := from.path(); !a.isPipe() && a.IsValid() {
		conn.Paths = []Path{pathOfUDP(a.udp)}
	}
	if err := to.sendOpen(conn.packet()); err != nil {
		m.log.Debug("telehash: connect", "to", to.hn, "err", err)
	}
}

// addRoute records that channel packets with tok go to owner, coming
// from partner. When full, idle routes are dropped; it reports false
// when none could be.
func (m *Mesh) addRoute(tok Token, owner, partner Hashname) bool {
	r := m.routing
	now := time.Now()
	idle := 2 * m.opts.LinkTimeout
	r.mu.Lock()
	defer r.mu.Unlock()
	if old := r.routes[tok]; old != nil && old.owner == owner && old.partner == partner {
		old.last.Store(now.UnixNano())
		return true
	}
	if len(r.routes) >= m.opts.MaxRelays {
		for t, rt := range r.routes {
			if now.Sub(time.Unix(0, rt.last.Load())) > idle {
				delete(r.routes, t)
			}
		}
		r.prunePairsLocked()
		if len(r.routes) >= m.opts.MaxRelays {
			return false
		}
	}
	key := [2]Hashname{min(owner, partner), max(owner, partner)}
	pair := r.pairs[key]
	if pair == nil {
		pair = &relayBudget{}
		r.pairs[key] = pair
	}
	rt := &route{owner: owner, partner: partner, pair: pair}
	rt.last.Store(now.UnixNano())
	r.routes[tok] = rt
	r.n.Store(int32(len(r.routes)))
	return true
}

// prunePairsLocked forgets the budgets no route uses.
func (r *routing) prunePairsLocked() {
	used := make(map[*relayBudget]bool, len(r.routes))
	for _, rt := range r.routes {
		used[rt.pair] = true
	}
	for k, p := range r.pairs {
		if !used[p] {
			delete(r.pairs, k)
		}
	}
	r.n.Store(int32(len(r.routes)))
}

// lookupRoute returns the route of tok, or nil.
func (m *Mesh) lookupRoute(tok Token) *route {
	r := m.routing
	if r.n.Load() == 0 {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.routes[tok]
}

// relayChannel forwards a channel packet (uncloaked, pkt) whose token is
// not ours, if a route knows it and it comes from the route's partner.
// It reports whether the packet was a relayed one (forwarded or not).
func (m *Mesh) relayChannel(pkt []byte, from pathAddr) bool {
	rt := m.lookupRoute(Token(pkt[2 : 2+TokenSize]))
	if rt == nil {
		return false
	}
	m.forward(rt, rt.partner, rt.owner, pkt, from)
	return true
}

// relayHandshake forwards a handshake (uncloaked) sent to us by a side
// of a route (telehash-js sends its answers to the router as they are):
// it goes to the other side. It reports whether the handshake was a
// relayed one.
func (m *Mesh) relayHandshake(pkt []byte, from pathAddr) bool {
	if m.routing.n.Load() == 0 {
		return false
	}
	tok, err := TokenFromBody(pkt[3:])
	if err != nil {
		return false
	}
	rt := m.lookupRoute(tok)
	if rt == nil {
		return false
	}
	m.forward(rt, rt.owner, rt.partner, pkt, from)
	return true
}

// forward sends pkt (uncloaked), received from path from, which must be
// a path of src, to dst's current path, within the pair's budget.
func (m *Mesh) forward(rt *route, src, dst Hashname, pkt []byte, from pathAddr) {
	rs := &m.stats.routing
	s, d := m.lookup(src), m.lookup(dst)
	if s == nil || d == nil || !s.isKnownPath(from) || !m.opts.Router {
		rs.relayDropped.Add(1)
		return
	}
	to := d.path()
	if !to.IsValid() || to == from {
		rs.relayDropped.Add(1)
		return
	}
	now := time.Now()
	ok := true
	if r := m.routing.rate.Load(); r >= 0 {
		rate := float64(r)
		rt.pair.mu.Lock()
		rt.pair.b.refill(now, rate, rate)
		ok = rt.pair.b.tokens >= float64(len(pkt))
		if ok {
			rt.pair.b.tokens -= float64(len(pkt))
		}
		rt.pair.mu.Unlock()
	}
	if !ok {
		rs.relayDropped.Add(1)
		return
	}
	rt.last.Store(now.UnixNano())
	c, err := Cloak(m.opts.Rand, pkt, 1)
	if err != nil {
		rs.relayDropped.Add(1)
		return
	}
	if m.send(c, to) == nil {
		rs.relayed.Add(1)
	}
}
