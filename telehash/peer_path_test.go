package telehash

import (
	"strings"
	"testing"
)

// TestPeerPath: a peer reached through the relay is reported relayed,
// one with a direct path by its UDP address; an unknown one not at all.
func TestPeerPath(t *testing.T) {
	w := newRoutedWorld(t, "peerpath", nil, true)
	w.link(t)
	path, relayed, ok := w.a.PeerPath(w.b.Hashname())
	if !ok || !relayed || !strings.Contains(path, string(w.r.Hashname())) {
		t.Fatalf("relayed peer: %q, %v, %v", path, relayed, ok)
	}
	w.blocked.Store(false)
	waitFor(t, "a direct path", func() bool {
		p, rel, _ := w.a.PeerPath(w.b.Hashname())
		return !rel && p == w.b.Addr().String()
	})
	if _, _, ok := w.a.PeerPath(w.r.Hashname() + "x"); ok {
		t.Error("an unknown peer has a path")
	}
}
