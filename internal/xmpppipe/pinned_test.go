package xmpppipe

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/internal/xmpp"
	"github.com/git-remote-daemon/git-remote-daemon/telehash"
)

// TestIntegrationAddPins: Bob's bridge, linked to Alice's node, pins
// Carol's node too on its live session: Carol's node becomes a path Bob
// links over, and Alice's bridge never sees Bob's node go (before
// AddPins, a session logged in again with the new pins).
func TestIntegrationAddPins(t *testing.T) {
	srv := server(t)
	if err := srv.Register("carol", "pw-carol"); err != nil {
		t.Fatal(err)
	}
	ma := newMesh(t, nil)
	mb := newMesh(t, func(h telehash.Hashname) bool { return h == ma.Hashname() })
	mc := newMesh(t, func(h telehash.Hashname) bool { return h == mb.Hashname() })
	var bobGone atomic.Int32
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ba, err := New(ctx, Config{
		Session: xmpp.Config{JID: srv.JID("alice"), Password: "pw-alice", Server: srv.Addr(), TLS: xmpp.StartTLS, CAFile: srv.CAFile},
		Mesh:    ma, Pins: []Pin{{JID: srv.JID("bob"), Hashname: mb.Hashname()}}, Logger: logger(),
		OnPeer: func(hn telehash.Hashname, _ string, online bool) {
			if hn == mb.Hashname() && !online {
				bobGone.Add(1)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ba.Close() })
	bb := bridge(t, srv, "bob", mb, Pin{JID: srv.JID("alice"), Hashname: ma.Hashname()})
	bc := bridge(t, srv, "carol", mc, Pin{JID: srv.JID("bob"), Hashname: mb.Hashname()})
	waitOnline(t, ba, mb.Hashname())
	waitOnline(t, bb, ma.Hashname())
	if _, err := ma.Link(ctx, telehash.LinkInfo{Keys: mb.LinkInfo().Keys}); err != nil {
		t.Fatal(err)
	}
	if bb.Pinned(srv.JID("carol"), mc.Hashname()) {
		t.Fatal("carol's node pinned before AddPins")
	}

	local := bb.Session().LocalJID()
	if err := bb.AddPins(ctx, Pin{JID: srv.JID("carol"), Hashname: mc.Hashname()}); err != nil {
		t.Fatal(err)
	}
	if !bb.Pinned(srv.JID("carol")+"/any", mc.Hashname()) {
		t.Fatal("carol's node not pinned after AddPins")
	}
	waitOnline(t, bb, mc.Hashname())
	waitOnline(t, bc, mb.Hashname())
	if _, err := mb.Link(ctx, telehash.LinkInfo{Keys: mc.LinkInfo().Keys}); err != nil {
		t.Fatalf("link to the newly pinned node: %v", err)
	}
	if n := bobGone.Load(); n != 0 || bb.Session().LocalJID() != local {
		t.Fatalf("bob's node went %d times (JID %s, was %s)", n, bb.Session().LocalJID(), local)
	}
	if !ma.Up(mb.Hashname()) {
		t.Fatal("alice's link to bob's node ended")
	}
	if err := bb.AddPins(ctx, Pin{JID: srv.JID("carol"), Hashname: "not-a-hashname"}); err == nil {
		t.Fatal("AddPins accepted a bad hashname")
	}
}
