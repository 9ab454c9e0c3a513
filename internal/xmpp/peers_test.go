package xmpp

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// TestIntegrationAddPeers: peers added to a live session are reached
// without a new login. Alice first logs in naming Bob (their accounts
// subscribe to each other), then again naming nobody: Bob's node's
// presence still comes (the subscription stays on the server) but is
// not a peer node. AddPeers(bob, carol) then makes Bob's node a peer at
// once, though its presence does not come again, and asks Carol (who
// names Alice) for her subscription; Bob's node never sees Alice's go.
func TestIntegrationAddPeers(t *testing.T) {
	srv := startServer(t)
	rb, rc := newRecorder(), newRecorder()
	cb := config(srv, "bob", 1, srv.JID("alice"))
	rb.hook(&cb)
	var aliceGone atomic.Int32
	onPeer := cb.OnPeer
	cb.OnPeer = func(p Peer) {
		if !p.Online && p.Node.Hashname == hn(0) {
			aliceGone.Add(1)
		}
		onPeer(p)
	}
	dial(t, cb)
	cc := config(srv, "carol", 2, srv.JID("alice"))
	rc.hook(&cc)
	dial(t, cc)

	first := newRecorder()
	ca := config(srv, "alice", 0, srv.JID("bob"))
	first.hook(&ca)
	a1 := dial(t, ca)
	first.waitPeer(t, hn(1))
	rb.waitPeer(t, hn(0))
	a1.Close()
	for deadline := time.Now().Add(10 * time.Second); rb.hasPeer(hn(0)); {
		if time.Now().After(deadline) {
			t.Fatal("bob still sees alice's first session")
		}
		time.Sleep(10 * time.Millisecond)
	}

	ra := newRecorder()
	ca = config(srv, "alice", 0)
	ra.hook(&ca)
	a := dial(t, ca)
	rb.waitPeer(t, hn(0)) // Bob sees Alice (and shows her his node)
	time.Sleep(500 * time.Millisecond)
	if ra.hasPeer(hn(1)) || ra.hasPeer(hn(2)) {
		t.Fatal("a node of an account that is no peer reported")
	}
	gone, local := aliceGone.Load(), a.LocalJID()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.AddPeers(ctx, srv.JID("bob"), srv.JID("carol")+"/ignored"); err != nil {
		t.Fatal(err)
	}
	ra.waitPeer(t, hn(1)) // seen before, presence not sent again
	ra.waitPeer(t, hn(2)) // subscribed now
	rc.waitPeer(t, hn(0))
	if n := aliceGone.Load(); n != gone {
		t.Fatalf("bob saw alice's node go %d times while peers were added", n-gone)
	}
	if a.LocalJID() != local {
		t.Fatalf("alice logged in again: %s, was %s", a.LocalJID(), local)
	}
	if err := a.AddPeers(ctx, srv.JID("bob")); err != nil { // again: nothing to do
		t.Fatal(err)
	}
	if err := a.AddPeers(ctx, "@bad"); err == nil {
		t.Fatal("AddPeers accepted a bad JID")
	}
}
