package telehash

import (
	"encoding/json"
	"fmt"
	"net/netip"
)

// Channel types of routing (spec: routing.md).
const (
	// PeerType asks a router to introduce us to a peer (channels/peer.md).
	PeerType = "peer"
	// ConnectType is a router's introduction (channels/connect.md).
	ConnectType = "connect"
)

// maxConnectPaths caps the paths taken from a connect request.
const maxConnectPaths = 4

// peerRequest is the open packet of a "peer" channel (spec:
// channels/peer.md):
//
//	{"c":10,"type":"peer","peer":"fvif...irkq"}
//	BODY: ...packet...
//
// The body is a packet for the peer: in practice our handshake message
// (LOB with the one-byte CSID head), which telehash-js sends too.
type peerRequest struct {
	Peer Hashname
	Body []byte
}

// parsePeerRequest validates the open packet of a peer channel.
func parsePeerRequest(cp *ChannelPacket) (*peerRequest, error) {
	var hn string
	if err := decodeString(cp.Extra["peer"], &hn); err != nil || hn == "" {
		return nil, fmt.Errorf("%w: peer request without a peer", ErrMalformed)
	}
	peer, err := ParseHashname(hn)
	if err != nil {
		return nil, fmt.Errorf("peer request: %w", err)
	}
	if _, err := DecodePacket(cp.Body); err != nil {
		return nil, fmt.Errorf("peer request body: %w", err)
	}
	return &peerRequest{Peer: peer, Body: cp.Body}, nil
}

// packet returns the request as a channel open packet.
func (r *peerRequest) packet() *ChannelPacket {
	hn, _ := json.Marshal(string(r.Peer))
	return &ChannelPacket{Type: PeerType, Extra: map[string]json.RawMessage{"peer": hn}, Body: r.Body}
}

// connectRequest is the open packet of a "connect" channel (spec:
// channels/connect.md): the body of a peer request, with the hashname of
// who sent it ("peer") and, an extension telehash-js ignores, the paths
// the router sees that sender on ("paths"), for hole punching.
//
//	{"c":11,"type":"connect","peer":"uvab...hv7g","paths":[{"type":"udp4","ip":..,"port":..}]}
//	BODY: ...packet...
type connectRequest struct {
	Peer  Hashname // may be empty (telehash-js always sets it)
	Paths []Path
	Body  []byte
}

// parseConnectRequest validates the open packet of a connect channel.
// Paths that are not valid udp4/udp6 paths are left out.
func parseConnectRequest(cp *ChannelPacket) (*connectRequest, error) {
	r := &connectRequest{Body: cp.Body}
	if raw, ok := cp.Extra["peer"]; ok {
		var hn string
		if err := decodeString(raw, &hn); err != nil {
			return nil, fmt.Errorf("%w: connect peer is not a string", ErrMalformed)
		}
		peer, err := ParseHashname(hn)
		if err != nil {
			return nil, fmt.Errorf("connect request: %w", err)
		}
		r.Peer = peer
	}
	if raw, ok := cp.Extra["paths"]; ok {
		var paths []Path
		if err := json.Unmarshal(raw, &paths); err != nil {
			return nil, fmt.Errorf("%w: connect paths: %v", ErrMalformed, err)
		}
		for _, pa := range paths {
			if _, ok := udpPathOf(pa); ok && len(r.Paths) < maxConnectPaths {
				r.Paths = append(r.Paths, Path{Type: pa.Type, IP: pa.IP, Port: pa.Port})
			}
		}
	}
	if _, err := DecodePacket(cp.Body); err != nil {
		return nil, fmt.Errorf("connect request body: %w", err)
	}
	return r, nil
}

// packet returns the request as a channel open packet.
func (r *connectRequest) packet() *ChannelPacket {
	extra := map[string]json.RawMessage{}
	if r.Peer != "" {
		extra["peer"], _ = json.Marshal(string(r.Peer))
	}
	if len(r.Paths) > 0 {
		extra["paths"], _ = json.Marshal(r.Paths)
	}
	return &ChannelPacket{Type: ConnectType, Extra: extra, Body: r.Body}
}

// udpPathOf returns the UDP address of a udp4/udp6 path.
func udpPathOf(pa Path) (netip.AddrPort, bool) {
	if pa.Type != "udp4" && pa.Type != "udp6" {
		return netip.AddrPort{}, false
	}
	ip, err := netip.ParseAddr(pa.IP)
	if err != nil || pa.Port <= 0 || pa.Port > 65535 || ip.IsUnspecified() || ip.IsMulticast() {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(ip, uint16(pa.Port)), true
}

// pathOfUDP returns the path JSON of a UDP address.
func pathOfUDP(a netip.AddrPort) Path {
	typ := "udp4"
	if a.Addr().Unmap().Is6() {
		typ = "udp6"
	}
	return Path{Type: typ, IP: a.Addr().Unmap().String(), Port: int(a.Port())}
}

// sendOpen sends a fire-and-forget unreliable channel open (peer and
// connect channels get no answer, spec: "The channel should always
// silently timeout"): no channel state is kept.
func (p *peer) sendOpen(cp *ChannelPacket) error {
	id, err := p.x.NextChannelID()
	if err != nil {
		return err
	}
	if err := validExtra(cp.Extra); err != nil {
		return err
	}
	return p.sendInner(&outHead{c: id, typ: cp.Type, extra: cp.Extra}, cp.Body)
}
