package telehash

import (
	"fmt"
	"net/netip"
	"reflect"
)

// Pipe carries packets to a peer by another way than the mesh's own UDP
// socket: a relay through a router, an XMPP session, a TCP stream.
//
// A Pipe is compared with == and used as a map key by the mesh (it is a
// path, and the key of its rate limit): its dynamic type must be
// comparable, a pointer type typically. Receive and AddPipe panic on a
// Pipe whose type is not.
type Pipe interface {
	// Send delivers one packet, exactly what a UDP datagram would carry
	// (a cloaked LOB). It may drop (the mesh resends what matters), must
	// not block for long, and must be safe for concurrent use.
	Send(b []byte) error
	// String names the pipe in logs ("relay via <hashname>", "xmpp:a@b/c").
	String() string
}

// pathAddr is a path to a peer: a UDP address on the mesh's socket, or a
// Pipe (exactly one of them is set). It is comparable.
type pathAddr struct {
	udp  netip.AddrPort
	pipe Pipe
}

// udpPath returns the path of UDP address a.
func udpPath(a netip.AddrPort) pathAddr { return pathAddr{udp: a} }

// pipePath returns the path of pipe p.
func pipePath(p Pipe) pathAddr { return pathAddr{pipe: p} }

// IsValid reports whether the path leads anywhere.
func (a pathAddr) IsValid() bool { return a.pipe != nil || a.udp.IsValid() }

// isPipe reports whether the path is a Pipe.
func (a pathAddr) isPipe() bool { return a.pipe != nil }

// String names the path in logs.
func (a pathAddr) String() string {
	switch {
	case a.pipe != nil:
		return a.pipe.String()
	case a.udp.IsValid():
		return a.udp.String()
	}
	return "none"
}

// mustComparablePipe panics when p's dynamic type cannot be compared
// (it would panic later, deep in the mesh, as a map key).
func mustComparablePipe(p Pipe) {
	if p == nil {
		panic("telehash: nil Pipe")
	}
	if !reflect.TypeOf(p).Comparable() {
		panic(fmt.Sprintf("telehash: Pipe of type %T is not comparable (use a pointer)", p))
	}
}

// send sends one datagram over path to.
func (m *Mesh) send(b []byte, to pathAddr) error {
	if m.testDrop != nil && m.testDrop(to) {
		return nil // tests: a path that does not work
	}
	if to.pipe == nil {
		return m.writeTo(b, to.udp)
	}
	if err := to.pipe.Send(b); err != nil {
		return fmt.Errorf("telehash: send over %s: %w", to.pipe, err)
	}
	m.stats.sent.Add(1)
	return nil
}

// Receive hands the mesh a packet that arrived over pipe p. It is
// handled exactly like a UDP datagram from a source address: same
// authentication, replay protection, per-source rate limit (keyed by the
// pipe), and a fresh authenticated packet makes p the peer's current path.
// b is not kept nor modified; Receive may be called concurrently.
func (m *Mesh) Receive(b []byte, p Pipe) {
	mustComparablePipe(p)
	if m.ctx.Err() != nil {
		return
	}
	m.stats.received.Add(1)
	if len(b) > maxReadDatagram {
		m.stats.dropMalformed.Add(1)
		return
	}
	buf := make([]byte, len(b), len(b)+cloakSpare)
	copy(buf, b)
	m.receivePath(buf, pipePath(p))
	m.flushAcks()
}

// AddPipe offers p as a path to peer (known or not yet linked): handshakes
// from Link and keepalives go over it too, beside the UDP paths. A peer
// not linked yet gets its pipes when Link (or a handshake that Allow
// admits) makes it known; until then they wait, a few per peer.
func (m *Mesh) AddPipe(peer Hashname, p Pipe) {
	mustComparablePipe(p)
	m.mu.Lock()
	defer m.mu.Unlock()
	if pr := m.peers[peer]; pr != nil {
		m.mu.Unlock()
		pr.addPath(pipePath(p))
		m.mu.Lock()
		return
	}
	if m.pendingPipes == nil {
		m.pendingPipes = make(map[Hashname][]Pipe)
	}
	pipes := m.pendingPipes[peer]
	for _, q := range pipes {
		if q == p {
			return
		}
	}
	if len(pipes) >= maxPendingPipes {
		pipes = pipes[1:]
	}
	if len(pipes) == 0 && len(m.pendingPipes) >= maxPendingPipePeers {
		return
	}
	m.pendingPipes[peer] = append(pipes, p)
}

// maxPendingPipes and maxPendingPipePeers bound the pipes kept for peers
// not known yet.
const (
	maxPendingPipes     = 4
	maxPendingPipePeers = 1024
)

// RemovePipe forgets p as a path to peer: it is no longer offered, and
// stops being the current path (the next fresh packet from elsewhere sets
// it). Closing a pipe's transport should remove it.
func (m *Mesh) RemovePipe(peer Hashname, p Pipe) {
	m.mu.Lock()
	pr := m.peers[peer]
	if pipes := m.pendingPipes[peer]; len(pipes) > 0 {
		kept := pipes[:0]
		for _, q := range pipes {
			if q != p {
				kept = append(kept, q)
			}
		}
		if len(kept) == 0 {
			delete(m.pendingPipes, peer)
		} else {
			m.pendingPipes[peer] = kept
		}
	}
	m.mu.Unlock()
	if pr != nil {
		pr.removePath(pipePath(p))
	}
}

// addPath adds a to the paths the peer is offered on (no duplicates).
func (p *peer) addPath(a pathAddr) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, b := range p.paths {
		if a == b {
			return
		}
	}
	p.paths = append(p.paths, a)
}

// removePath forgets path a.
func (p *peer) removePath(a pathAddr) {
	p.mu.Lock()
	kept := p.paths[:0]
	for _, b := range p.paths {
		if b != a {
			kept = append(kept, b)
		}
	}
	clear(p.paths[len(kept):])
	p.paths = kept
	p.mu.Unlock()
	if cur := p.addr.Load(); cur != nil && *cur == a {
		p.addr.CompareAndSwap(cur, nil)
	}
}

// adoptPendingPipesLocked gives a new peer the pipes offered before it
// was known (m.mu held).
func (m *Mesh) adoptPendingPipesLocked(p *peer) {
	pipes := m.pendingPipes[p.hn]
	if len(pipes) == 0 {
		return
	}
	delete(m.pendingPipes, p.hn)
	for _, q := range pipes {
		p.paths = append(p.paths, pipePath(q))
	}
}
