package telehash

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"
)

// The path channel (spec: channels/path.md): an unreliable channel by
// which each side of a link learns the other's paths and the address
// the other sees it at.
//
//	request:  {"c":1,"type":"path","paths":[{"type":"udp4","ip":"192.168.0.36","port":42424}]}
//	response: {"c":1,"path":{"type":"udp4","ip":"203.0.113.7","port":61000}}
//
// "To handle a new path request, a response packet must be sent back to
// every already known network path for the sender, as well as to any new
// paths included in the request. [...] Every path response should include
// a "path":{...} where the value is the specific path information the
// response is being sent to." (The new paths are kept, not answered:
// see servePath.) telehash-js opens one after every link
// status change (ext/path.js link.ping) and so does a Mesh.

// PathType is the channel type of path requests.
const PathType = "path"

// Bounds on what a path request may make us do or keep.
const (
	maxPathEntries  = 32 // entries of a request's "paths" looked at
	maxLearnedPaths = 8  // UDP paths learned from a peer's requests
	pathAnswerWait  = 5 * time.Second
	// pathRequestDelay: a link sends its path request that long after
	// it came up (at most half the keepalive interval).
	pathRequestDelay = 500 * time.Millisecond
)

// PathRequest is the JSON of a path request's open packet: the paths
// the sender knows for itself.
type PathRequest struct {
	Paths []Path `json:"paths"`
}

// PathResponse is the JSON of a path response: the path it was sent to,
// which is how the responder reaches (sees) the requester.
type PathResponse struct {
	Path Path `json:"path"`
}

// ParsePathRequest reads the "paths" of a path request's open packet
// (its Extra fields). Entries that are not UDP paths (tcp4, http,
// webrtc, peer...) or not valid are skipped; a "paths" that is not an
// array of objects is an error; no "paths" is an empty request.
func ParsePathRequest(extra map[string]json.RawMessage) ([]netip.AddrPort, error) {
	raw, ok := extra["paths"]
	if !ok {
		return nil, nil
	}
	var entries []json.RawMessage
	if err := json.Unmarshal(raw, &entries); err != nil || entries == nil {
		return nil, fmt.Errorf("%w: path request: paths is not an array", ErrMalformed)
	}
	var out []netip.AddrPort
	for i, e := range entries {
		if i == maxPathEntries {
			break
		}
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(e, &fields); err != nil || fields == nil {
			return nil, fmt.Errorf("%w: path request: entry %d is not an object", ErrMalformed, i)
		}
		if ap, ok := pathFieldsAddr(fields); ok {
			out = appendNew(out, ap)
		}
	}
	return out, nil
}

// ParsePathResponse reads the "path" of a path response (its Extra
// fields): the UDP address the responder sent it to. ok is false when
// there is none or it is not a UDP path.
func ParsePathResponse(extra map[string]json.RawMessage) (netip.AddrPort, bool) {
	raw, ok := extra["path"]
	if !ok {
		return netip.AddrPort{}, false
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return netip.AddrPort{}, false
	}
	return pathFieldsAddr(fields)
}

// pathFieldsAddr reads a udp4 or udp6 path JSON object. A udp4 path must hold
// an IPv4 address, a udp6 one an IPv6 one (a v4-mapped one is unmapped);
// zones, port 0 and unspecified addresses are refused.
func pathFieldsAddr(fields map[string]json.RawMessage) (netip.AddrPort, bool) {
	var p Path
	if json.Unmarshal(fields["type"], &p.Type) != nil || json.Unmarshal(fields["ip"], &p.IP) != nil ||
		json.Unmarshal(fields["port"], &p.Port) != nil {
		return netip.AddrPort{}, false
	}
	return p.addrPort()
}

// addrPort returns the UDP address of a udp4 or udp6 path.
func (p Path) addrPort() (netip.AddrPort, bool) {
	if p.Type != "udp4" && p.Type != "udp6" {
		return netip.AddrPort{}, false
	}
	ip, err := netip.ParseAddr(p.IP)
	if err != nil || p.Port <= 0 || p.Port > 65535 || ip.Zone() != "" || ip.IsUnspecified() {
		return netip.AddrPort{}, false
	}
	if (p.Type == "udp4") != ip.Unmap().Is4() || (p.Type == "udp6" && ip.Is4()) {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(ip.Unmap(), uint16(p.Port)), true
}

// PathOf returns the path JSON of a UDP address ("udp4" or "udp6").
func PathOf(a netip.AddrPort) Path {
	ip := a.Addr().Unmap()
	typ := "udp4"
	if ip.Is6() {
		typ = "udp6"
	}
	return Path{Type: typ, IP: ip.String(), Port: int(a.Port())}
}

func appendNew(s []netip.AddrPort, a netip.AddrPort) []netip.AddrPort {
	for _, b := range s {
		if a == b {
			return s
		}
	}
	return append(s, a)
}

// seenState is what path channels told us: the address each peer sees
// us at (its responses), and the paths it listed for itself (its
// requests).
type seenState struct {
	mu      sync.Mutex
	seen    map[Hashname]netip.AddrPort
	learned map[Hashname][]netip.AddrPort
}

// SeenAs returns the UDP address at which peer last said it sees this
// mesh (the "path" of its answer to our path request), if any: behind a
// NAT, the public address.
func (m *Mesh) SeenAs(peer Hashname) (netip.AddrPort, bool) {
	m.seenAs.mu.Lock()
	defer m.seenAs.mu.Unlock()
	a, ok := m.seenAs.seen[peer]
	return a, ok
}

func (m *Mesh) setSeenAs(peer Hashname, a netip.AddrPort) {
	m.seenAs.mu.Lock()
	defer m.seenAs.mu.Unlock()
	if m.seenAs.seen == nil {
		m.seenAs.seen = make(map[Hashname]netip.AddrPort)
	}
	if _, ok := m.seenAs.seen[peer]; !ok && len(m.seenAs.seen) >= maxTombs {
		clear(m.seenAs.seen)
	}
	m.seenAs.seen[peer] = a
}

// LocalPaths returns the UDP paths this mesh can be reached at as far as
// it knows: its bound address, or, bound to an unspecified address,
// those of the machine's interfaces (IPv6 ones when bound to "[::]";
// loopback and link-local ones left out unless nothing else is there).
func (m *Mesh) LocalPaths() []Path {
	addr := m.Addr()
	ip := addr.Addr().Unmap()
	if !ip.IsUnspecified() {
		return []Path{PathOf(addr)}
	}
	var out, loop []Path
	ifaddrs, _ := net.InterfaceAddrs()
	for _, a := range ifaddrs {
		pfx, err := netip.ParsePrefix(a.String())
		if err != nil {
			continue
		}
		ia := pfx.Addr().Unmap()
		switch {
		case ia.Is6() && (ip.Is4() || ia.IsLinkLocalUnicast() || ia.Zone() != ""):
		case ia.IsLoopback():
			loop = append(loop, PathOf(netip.AddrPortFrom(ia, addr.Port())))
		default:
			out = append(out, PathOf(netip.AddrPortFrom(ia, addr.Port())))
		}
	}
	if len(out) == 0 {
		return loop
	}
	return out
}

// servePath answers a peer's path request: to its current path and to
// every other known one, each response naming where it was sent. The
// UDP paths of the request are learned (kept to retry the peer on when
// the link is down, up to maxLearnedPaths) but, unlike what the spec
// asks, not answered at once: a peer would otherwise have us send to
// any address it names, and a link kept to pipes (XMPP) send over UDP.
func (m *Mesh) servePath(c *Channel) {
	p := c.p
	defer c.finish()
	var reqPaths []netip.AddrPort
	if open := c.OpenPacket(); open != nil {
		var err error
		if reqPaths, err = ParsePathRequest(open.Extra); err != nil {
			m.log.Debug("telehash: path request", "peer", p.hn, "err", err)
		}
	}
	p.learnPaths(reqPaths)
	p.mu.Lock()
	targets := p.targetsLocked()
	p.mu.Unlock()
	for _, t := range targets {
		extra := map[string]json.RawMessage{}
		if !t.isPipe() {
			b, _ := json.Marshal(PathOf(t.udp))
			extra["path"] = b
		}
		if err := p.sendInnerTo(&outHead{c: c.id, extra: extra}, nil, t); err != nil {
			m.log.Debug("telehash: path response", "peer", p.hn, "to", t, "err", err)
		}
	}
}

func containsPath(s []pathAddr, a pathAddr) bool {
	for _, b := range s {
		if a == b {
			return true
		}
	}
	return false
}

// learnPaths keeps UDP paths a peer told us about (up to
// maxLearnedPaths, the latest request's first): they are tried when the
// link is down (see relinkTargets), not while it is up, where the path
// in use stays what the peer's fresh packets say.
func (p *peer) learnPaths(paths []netip.AddrPort) {
	if len(paths) == 0 {
		return
	}
	m := p.m
	m.seenAs.mu.Lock()
	defer m.seenAs.mu.Unlock()
	if m.seenAs.learned == nil {
		m.seenAs.learned = make(map[Hashname][]netip.AddrPort)
	}
	if _, ok := m.seenAs.learned[p.hn]; !ok && len(m.seenAs.learned) >= maxTombs {
		clear(m.seenAs.learned)
	}
	out := append([]netip.AddrPort(nil), paths[:min(len(paths), maxLearnedPaths)]...)
	for _, a := range m.seenAs.learned[p.hn] {
		if len(out) < maxLearnedPaths {
			out = appendNew(out, a)
		}
	}
	m.seenAs.learned[p.hn] = out
}

// learnedPaths returns the UDP paths learned from the peer's requests.
func (p *peer) learnedPaths() []netip.AddrPort {
	m := p.m
	m.seenAs.mu.Lock()
	defer m.seenAs.mu.Unlock()
	return append([]netip.AddrPort(nil), m.seenAs.learned[p.hn]...)
}

// sendInnerTo encrypts and sends one inner packet over path to.
func (p *peer) sendInnerTo(h *outHead, body []byte, to pathAddr) error {
	inner, err := appendInner(make([]byte, 0, 128+len(body)), h, body)
	if err != nil {
		return err
	}
	d, err := p.x.sealChannelDatagram(p.m.opts.Rand, inner)
	if err != nil {
		return err
	}
	return p.m.send(d, to)
}

// requestPaths opens a path request to the peer with our paths and
// records, for pathAnswerWait, the address its responses say it sees
// us at (SeenAs).
func (p *peer) requestPaths(ctx context.Context) {
	m := p.m
	// Not at once: a link that lasts less (a process that fetches and
	// exits) has no use for it, and its late packets would only reach
	// the peer's next session.
	select {
	case <-ctx.Done():
		return
	case <-time.After(min(pathRequestDelay, m.opts.Keepalive/2)):
	}
	if !p.isUp() {
		return
	}
	local := m.LocalPaths()
	paths, err := json.Marshal(local)
	if err != nil {
		return
	}
	c, err := m.OpenChannel(ctx, p.hn, PathType, false, &ChannelPacket{Extra: map[string]json.RawMessage{"paths": paths}})
	if err != nil {
		m.log.Debug("telehash: path request", "peer", p.hn, "err", err)
		return
	}
	defer c.finish()
	ctx, cancel := context.WithTimeout(ctx, pathAnswerWait)
	defer cancel()
	got := false
	for {
		pkt, err := c.Receive(ctx)
		if err != nil {
			if ce, ok := err.(*ChannelError); ok {
				m.log.Debug("telehash: path request refused", "peer", p.hn, "err", ce.Msg)
			}
			return
		}
		// Answers also go to the paths we listed: one naming another
		// path (a NAT's) is how the peer sees us, and wins.
		a, ok := ParsePathResponse(pkt.Extra)
		if !ok {
			continue
		}
		listed := false
		for _, l := range local {
			listed = listed || l == PathOf(a)
		}
		if !got || !listed {
			got = got || !listed
			m.setSeenAs(p.hn, a)
			m.log.Debug("telehash: seen as", "peer", p.hn, "path", a)
		}
	}
}
