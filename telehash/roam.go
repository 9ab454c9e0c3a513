package telehash

import (
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// Roaming: links follow peers (and this mesh) to new addresses.
//
//   - A peer that moved (a laptop on another network, a daemon restarted
//     on another port) is followed by its first fresh authenticated
//     packet from the new address: a handshake with a new at or a new
//     session (peer.handshake), or new content on a reliable channel.
//   - When this mesh moved, the peers learn it from us: Roam (called by
//     the interface watcher when the machine's addresses change, or by
//     the owner) sends every peer in use a fresh handshake at once, from
//     the new address.
//   - A keepalive not answered within probeDelay, or a link in use that
//     went down, starts probing: fresh handshakes to every path the peer
//     may be at (its current one, those it was linked with and, once the
//     link is down, those it listed in a path request), again after 2,
//     4, 8... seconds up to the keepalive interval, until something
//     fresh comes back.

// probeDelay is how long an answer to a keepalive may take before the
// peer is probed on all its paths (at most half the keepalive interval).
const probeDelay = time.Second

// roamState is a peer's probing (mesh_peer.go holds it).
type roamState struct {
	mu     sync.Mutex
	active bool
	since  time.Time // probing ends at the first fresh packet after it
	delay  time.Duration
	timer  *time.Timer
	probes int
}

// watchAnswer starts probing the peer unless a fresh packet arrives
// within probeDelay of since (a keepalive or handshake sent then).
func (p *peer) watchAnswer(since time.Time) {
	r := &p.roam
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.active || p.m.ctx.Err() != nil {
		return
	}
	r.active, r.since, r.delay = true, since, min(probeDelay, p.m.opts.Keepalive/2)
	r.timer = time.AfterFunc(r.delay, p.roamCheck)
}

// roamCheck runs on the probe timer: done when the peer answered, or
// the link is not in use any more; else probe, and again later.
func (p *peer) roamCheck() {
	r := &p.roam
	r.mu.Lock()
	answered := p.lastRecv.Load() > r.since.UnixNano()
	p.mu.Lock()
	wanted := !p.removed && (p.up || p.kept > 0 || len(p.chans) > 0)
	p.mu.Unlock()
	if answered || !wanted || p.m.ctx.Err() != nil {
		r.active = false
		r.mu.Unlock()
		return
	}
	r.probes++
	r.delay = min(2*r.delay, p.m.opts.Keepalive)
	r.timer = time.AfterFunc(r.delay, p.roamCheck)
	r.mu.Unlock()
	p.probe()
}

// probe sends a handshake with a new at to the peer's current path and
// those it was linked with; while the link is down, to those it listed
// in path requests too (while it is up, the path in use stays one the
// peer's fresh packets came from).
func (p *peer) probe() {
	p.mu.Lock()
	addrs := p.targetsLocked()
	up := p.up
	p.mu.Unlock()
	for _, a := range p.learnedPaths() {
		if up {
			break
		}
		if t := udpPath(a); !containsPath(addrs, t) {
			addrs = append(addrs, t)
		}
	}
	p.m.log.Debug("telehash: probing", "peer", p.hn, "paths", len(addrs))
	p.keepalive(addrs)
}

// Roam tells the mesh that its network changed (another address,
// another interface, a NAT that may have changed): every peer in use
// (up, kept or with open channels) gets a handshake with a new at at
// once on all its known paths, which moves its path for us to our new
// address, and is probed until it answers. The interface watcher calls
// it for a mesh bound to an unspecified address; an owner that knows
// better (a network manager's event) may call it too.
func (m *Mesh) Roam() {
	m.mu.Lock()
	peers := make([]*peer, 0, len(m.peers))
	for _, p := range m.peers {
		peers = append(peers, p)
	}
	m.mu.Unlock()
	now := time.Now()
	for _, p := range peers {
		p.mu.Lock()
		inUse := !p.removed && (p.up || p.inUseLocked())
		p.mu.Unlock()
		if inUse {
			p.probe()
			p.watchAnswer(now)
		}
	}
}

// addrSet returns the sorted interface addresses (nil on error).
func addrSet(as []net.Addr, err error) []netip.Addr {
	if err != nil {
		return nil
	}
	out := make([]netip.Addr, 0, len(as))
	for _, a := range as {
		if pfx, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, pfx.Addr())
		}
	}
	slices.SortFunc(out, func(a, b netip.Addr) int { return a.Compare(b) })
	return out
}
