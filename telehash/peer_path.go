package telehash

// PeerPath names the path a linked peer is reached by now: its UDP
// address, or a pipe ("relay via <router>" for a relay through a
// router, which relayed reports). ok is false when the peer is not up.
func (m *Mesh) PeerPath(hn Hashname) (path string, relayed, ok bool) {
	p := m.lookup(hn)
	if p == nil || !p.isUp() {
		return "", false, false
	}
	a := p.path()
	_, relayed = a.pipe.(*relayPipe)
	return a.String(), relayed, true
}
