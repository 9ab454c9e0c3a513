package telehash

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Errors reported by Mesh, links and channels.
var (
	// ErrMeshClosed reports use of a closed Mesh.
	ErrMeshClosed = errors.New("telehash: mesh closed")
	// ErrLinkTimeout reports a link whose handshakes got no answer.
	ErrLinkTimeout = errors.New("telehash: link handshake timed out")
	// ErrLinkDown reports a link that stopped answering.
	ErrLinkDown = errors.New("telehash: link down")
	// ErrSessionReset reports channels of a session replaced by a new one
	// (the peer restarted).
	ErrSessionReset = errors.New("telehash: session reset by peer")
	// ErrUnknownPeer reports a channel to a peer never linked.
	ErrUnknownPeer = errors.New("telehash: unknown peer")
	// ErrChannelTimeout reports a reliable channel whose packets were not
	// acknowledged in time (telehash-js err "timeout").
	ErrChannelTimeout = errors.New("telehash: channel timeout")
	// ErrChannelClosed reports use of a closed channel or a write after end.
	ErrChannelClosed = errors.New("telehash: channel closed")
)

// ChannelError is an "err" received from the peer on a channel.
type ChannelError struct{ Msg string }

func (e *ChannelError) Error() string { return "telehash: channel error from peer: " + e.Msg }

// Path is a network path to a peer (spec: transports/udp.md "Path JSON").
// Only "udp4" and "udp6" are used.
type Path struct {
	Type string `json:"type"`
	IP   string `json:"ip"`
	Port int    `json:"port"`
	// HN is the router of a "peer" path (spec: channels/path.md): the
	// peer is reached through it (see Mesh.AddRouter).
	HN Hashname `json:"hn,omitempty"`
}

// LinkInfo is what a Mesh needs to link to a peer (spec: link.md "JSON"):
// its keys (base32 by CSID, a "3a" key is required) and paths.
// Intermediates may stand for the keys of the peer's other cipher sets
// (base32 SHA-256 of the key, spec: hashname.md): the hashname is
// computed from both.
type LinkInfo struct {
	Keys          map[string]string `json:"keys"`
	Intermediates map[string]string `json:"intermediates,omitempty"`
	Paths         []Path            `json:"paths"`
	// Pipes are paths to try besides Paths (see Pipe).
	Pipes []Pipe `json:"-"`
}

// Mesh is a local telehash endpoint on one UDP socket: it keeps one
// Exchange per peer hashname, answers and resends handshakes, keeps links
// alive, and carries channels (spec: mesh.md, link.md, e3x/channels.md,
// e3x/reliable.md). It is safe for concurrent use.
type Mesh struct {
	id   *Identity
	opts MeshOptions
	log  *slog.Logger
	conn *net.UDPConn
	io   datagramIO
	addr netip.AddrPort

	mu       sync.Mutex
	peers    map[Hashname]*peer
	tokens   map[Token]*peer
	handlers map[string]func(*Channel)
	closed   bool
	// ephs indexes the peers' ephemeral keys: the current session's
	// (its peer) and earlier ones (nil, oldest in oldEphs dropped first).
	ephs    map[[KeySize3a]byte]*peer
	oldEphs [][KeySize3a]byte
	// tombs remember forgotten peers (tombOrder: oldest first).
	tombs     map[Hashname]tomb
	tombOrder []Hashname
	// pendingPipes are pipes offered (AddPipe) to peers not known yet.
	pendingPipes map[Hashname][]Pipe
	// routing is the router and relay state (router.go, relay.go).
	routing *routing
	// testDrop, set by tests before use, drops what is sent to some paths.
	testDrop func(pathAddr) bool
	// testSessionSwitch, set by tests before use, runs as a handshake
	// starts a new session, between its keys and its channel table.
	testSessionSwitch func()

	limiter   *sourceLimiter
	hsq       chan hsJob
	hsPending atomic.Int64 // handshakes queued or being opened
	stashMu   sync.Mutex
	stash     []stashed // channel packets waiting for a session (mesh_stash.go)
	ackMu     sync.Mutex
	ackq      []*Channel // acks due at the end of the read batch (ackbatch.go)
	ackWait   atomic.Bool

	seenAs seenState  // path_channel.go
	ifw    ifaceWatch // ifwatch.go
	stats  meshStats
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewMesh binds opts.Listen and starts serving. Close releases it.
func NewMesh(ctx context.Context, id *Identity, opts MeshOptions) (*Mesh, error) {
	if id == nil {
		return nil, fmt.Errorf("%w: nil identity", ErrInvalidIdentity)
	}
	opts.setDefaults()
	var lc net.ListenConfig
	pc, err := lc.ListenPacket(ctx, "udp", opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("telehash: mesh listen: %w", err)
	}
	conn := pc.(*net.UDPConn)
	_ = conn.SetReadBuffer(opts.SocketBuffer)
	_ = conn.SetWriteBuffer(opts.SocketBuffer)
	m := &Mesh{
		id: id, opts: opts, log: opts.Logger, conn: conn,
		io:       newDatagramIO(conn, opts.NoBatchIO, opts.NoGSO),
		addr:     conn.LocalAddr().(*net.UDPAddr).AddrPort(),
		peers:    make(map[Hashname]*peer),
		tokens:   make(map[Token]*peer),
		handlers: make(map[string]func(*Channel)),
		ephs:     make(map[[KeySize3a]byte]*peer),
		tombs:    make(map[Hashname]tomb),
		limiter:  newSourceLimiter(opts.HandshakeRate, float64(opts.HandshakeBurst), maxSources),
		hsq:      make(chan hsJob, opts.HandshakeQueue),
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.handlers[PathType] = m.servePath
	m.wg.Add(2 + opts.HandshakeWorkers)
	m.initRouting()
	go m.readLoop()
	go m.monitor()
	for range opts.HandshakeWorkers {
		go m.handshakeWorker()
	}
	if m.addr.Addr().IsUnspecified() { // ifwatch.go: notice a network change
		m.startInterfaceWatch()
	}
	return m, nil
}

// Addr returns the bound UDP address.
func (m *Mesh) Addr() netip.AddrPort { return m.addr }

// Hashname returns the local hashname.
func (m *Mesh) Hashname() Hashname { return m.id.Hashname() }

// LinkInfo returns the local link information (keys and bound path).
func (m *Mesh) LinkInfo() LinkInfo {
	typ := "udp4"
	if m.addr.Addr().Unmap().Is6() {
		typ = "udp6"
	}
	return LinkInfo{Keys: m.id.Keys(), Paths: []Path{{Type: typ, IP: m.addr.Addr().Unmap().String(), Port: int(m.addr.Port())}}}
}

// Handle registers the handler of incoming channels of type typ; it runs
// on its own goroutine for each channel. Channels of types without a
// handler are refused with err "unknown type", as telehash-js does.
func (m *Mesh) Handle(typ string, h func(*Channel)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if h == nil {
		delete(m.handlers, typ)
		return
	}
	m.handlers[typ] = h
}

// Close stops the mesh: every channel fails with ErrMeshClosed.
func (m *Mesh) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	peers := make([]*peer, 0, len(m.peers))
	for _, p := range m.peers {
		peers = append(peers, p)
	}
	m.mu.Unlock()
	m.cancel()
	for _, p := range peers {
		p.failChannels(ErrMeshClosed)
	}
	err := m.conn.Close()
	m.wg.Wait()
	return err
}

// writeTo sends one datagram.
func (m *Mesh) writeTo(b []byte, to netip.AddrPort) error {
	if !to.IsValid() {
		return fmt.Errorf("telehash: no path to peer")
	}
	if _, err := m.conn.WriteToUDPAddrPort(b, to); err != nil {
		return fmt.Errorf("telehash: send: %w", err)
	}
	m.stats.sent.Add(1)
	return nil
}

// readLoop reads and dispatches datagrams until the socket is closed.
func (m *Mesh) readLoop() {
	defer m.wg.Done()
	for {
		err := m.io.read(m.receiveDatagram)
		m.flushAcks()
		if err != nil {
			if m.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			m.log.Debug("telehash: read", "err", err)
		}
	}
}

// receiveDatagram counts and handles one datagram read from the socket.
func (m *Mesh) receiveDatagram(b []byte, from netip.AddrPort) {
	m.stats.received.Add(1)
	if len(b) > maxReadDatagram {
		m.stats.dropMalformed.Add(1)
		return
	}
	m.receive(b, from)
}

// receive handles one datagram; b is reused by the caller afterwards.
func (m *Mesh) receive(b []byte, from netip.AddrPort) {
	// A dual-stack socket sees IPv4 peers as ::ffff:a.b.c.d: keep their
	// paths IPv4, as they are linked and compared.
	if from.Addr().Is4In6() {
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	}
	m.receivePath(b, udpPath(from))
}

// receivePath handles one packet that came over path from; b is
// overwritten, and reused by the caller afterwards.
func (m *Mesh) receivePath(b []byte, from pathAddr) {
	pkt, err := uncloakInPlace(b)
	if err != nil || len(pkt) < 2 {
		m.stats.dropMalformed.Add(1)
		return
	}
	switch hl := int(pkt[0])<<8 | int(pkt[1]); hl {
	case 0:
		m.receiveChannel(pkt, from)
	case 1:
		m.receiveHandshakeDatagram(pkt, from)
	default:
		m.stats.dropMalformed.Add(1)
	}
}

// receiveChannel routes a channel packet by its token, decrypts it in
// place and hands it to the peer. Only a fresh packet moves the peer's
// path (see peer.receiveChannel).
func (m *Mesh) receiveChannel(pkt []byte, from pathAddr) {
	if len(pkt) < 2+TokenSize {
		m.stats.dropMalformed.Add(1)
		return
	}
	m.mu.Lock()
	p := m.tokens[Token(pkt[2:2+TokenSize])]
	m.mu.Unlock()
	if p == nil {
		if !m.relayChannel(pkt, from) {
			m.stats.dropUnknownToken.Add(1)
		}
		return
	}
	from = m.viaRelay(p, from)
	p.sessMu.RLock() // not while a handshake switches sessions (peer.handshake)
	defer p.sessMu.RUnlock()
	inner, err := p.x.openChannelFast(pkt)
	if err != nil {
		if !m.stashChannel(p, pkt, from) {
			m.stats.dropDecrypt.Add(1)
		}
		return
	}
	p.receiveDecrypted(inner, from)
}

// receiveDecrypted handles a decrypted channel packet of p from addr.
func (p *peer) receiveDecrypted(inner []byte, from pathAddr) {
	// Sealed with the session keys: the peer has our handshake.
	p.confirmed.Store(true)
	ip, err := decodeInner(inner)
	if err != nil {
		p.m.stats.dropChannel.Add(1)
		return
	}
	ip.buf = inner
	p.receiveChannel(ip, from)
}

// peer returns the peer for hn, creating it (and its exchange) with the
// remote 3a key; a forgotten peer's tomb is applied.
func (m *Mesh) peer(hn Hashname, key []byte) (*peer, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrMeshClosed
	}
	if p := m.peers[hn]; p != nil {
		return p, nil
	}
	x, err := NewExchange(m.opts.Rand, m.id, key)
	if err != nil {
		return nil, err
	}
	p := newPeer(m, hn, x)
	m.resurrectLocked(p)
	m.adoptPendingPipesLocked(p)
	m.peers[hn] = p
	m.tokens[x.Token()] = p
	return p, nil
}

// lookup returns the peer for hn or nil.
func (m *Mesh) lookup(hn Hashname) *peer {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.peers[hn]
}

// handler returns the handler for typ.
func (m *Mesh) handler(typ string) func(*Channel) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.handlers[typ]
}

// monitor runs keepalives, link-down detection and re-linking.
func (m *Mesh) monitor() {
	defer m.wg.Done()
	tick := min(m.opts.Keepalive, m.opts.LinkTimeout) / 4
	tick = max(tick, 10*time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case now := <-t.C:
			m.mu.Lock()
			peers := make([]*peer, 0, len(m.peers))
			for _, p := range m.peers {
				peers = append(peers, p)
			}
			m.mu.Unlock()
			for _, p := range peers {
				p.tick(now)
			}
		}
	}
}

// Up reports whether the link to peer is up.
func (m *Mesh) Up(peer Hashname) bool {
	p := m.lookup(peer)
	return p != nil && p.isUp()
}
