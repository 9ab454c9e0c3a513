package xmpppipe

import (
	"context"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/telehash"
)

// TestOnlineMeansLinkable: a node Online reports has its pipe in the
// mesh already. git-remote-xmpp polls Online, then links; the pipe used
// to be offered to the mesh just after Online showed the node, and a
// link in between failed with "no udp4/udp6 path nor pipe" (xmpp.txtar's
// clone from Carol, once in three runs under load).
// The bridge's own hook widens the window as a loaded machine did.
func TestOnlineMeansLinkable(t *testing.T) {
	srv := server(t)
	// The dispatch goroutine descheduled between the two (a loaded
	// machine), 50 ms each time.
	testHookBeforeOffer = func() { time.Sleep(50 * time.Millisecond) }
	defer func() { testHookBeforeOffer = nil }()
	for i := range 5 {
		ma := newMesh(t, nil)
		mb := newMesh(t, func(h telehash.Hashname) bool { return h == ma.Hashname() })
		ba := bridgeOpts(t, srv, "alice", ma, true, Pin{JID: srv.JID("bob"), Hashname: mb.Hashname()})
		linked := make(chan error, 1)
		go func() {
			deadline := time.Now().Add(10 * time.Second)
			for ba.Online()[mb.Hashname()] == "" { // as thnode.WaitOnline, without its 20 ms naps
				if time.Now().After(deadline) {
					linked <- context.DeadlineExceeded
					return
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := ma.Link(ctx, telehash.LinkInfo{Keys: mb.LinkInfo().Keys})
			linked <- err
		}()
		bb := bridgeOpts(t, srv, "bob", mb, true, Pin{JID: srv.JID("alice"), Hashname: ma.Hashname()})
		if err := <-linked; err != nil {
			if strings.Contains(err.Error(), "nor pipe") {
				t.Fatalf("attempt %d: Online showed the node before the mesh had its pipe: %v", i, err)
			}
			t.Fatalf("attempt %d: %v", i, err)
		}
		bb.Close()
		ba.Close()
		ma.Close()
		mb.Close()
	}
}

// TestSecondLoginOfANodeLeaves: two processes of one identity logged in
// at once (Bob's daemon, and a git-remote-xmpp of Bob's cloning from
// someone else) present the same hashname on two full JIDs. When the
// second leaves, packets go back to the first, which is still online;
// the node used to be taken for offline (Alice's daemon showed
// DISCONNECTED while Bob's daemon ran on, xmpp.txtar).
func TestSecondLoginOfANodeLeaves(t *testing.T) {
	srv := server(t)
	bobID, err := telehash.GenerateIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	meshOf := func(id *telehash.Identity, allow func(telehash.Hashname) bool) *telehash.Mesh {
		m, err := telehash.NewMesh(context.Background(), id, telehash.MeshOptions{Allow: allow, Logger: logger(), HandshakeTimeout: 3 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		return m
	}
	ma := newMesh(t, nil)
	allowAlice := func(h telehash.Hashname) bool { return h == ma.Hashname() }
	mb1, mb2 := meshOf(bobID, allowAlice), meshOf(bobID, allowAlice)
	hn := bobID.Hashname()
	ba := bridgeOpts(t, srv, "alice", ma, true, Pin{JID: srv.JID("bob"), Hashname: hn})
	bb1 := bridgeOpts(t, srv, "bob", mb1, true, Pin{JID: srv.JID("alice"), Hashname: ma.Hashname()})
	waitOnline(t, ba, hn)
	first := ba.Online()[hn]
	if first != bb1.Session().LocalJID() {
		t.Fatalf("Alice sends to %s, want Bob's first login %s", first, bb1.Session().LocalJID())
	}
	bb2 := bridgeOpts(t, srv, "bob", mb2, true)
	second := bb2.Session().LocalJID()
	deadline := time.Now().Add(10 * time.Second)
	for ba.Online()[hn] != second {
		if time.Now().After(deadline) {
			t.Fatalf("Alice never saw Bob's second login %s (sends to %q)", second, ba.Online()[hn])
		}
		time.Sleep(10 * time.Millisecond)
	}
	bb2.Close()
	for ba.Online()[hn] != first {
		if time.Now().After(deadline.Add(5 * time.Second)) {
			t.Fatalf("after Bob's second login left, Alice sends to %q, want his first %s, still online", ba.Online()[hn], first)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// And the path works: a link to Bob's first process goes through.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := ma.Link(ctx, telehash.LinkInfo{Keys: mb1.LinkInfo().Keys}); err != nil {
		t.Fatalf("link after the second login left: %v", err)
	}
}

// TestAnswersGoToTheLoginThatTalks: with two logins of Bob's identity,
// the one that links to Alice gets her answers, though the other logged
// in last.
func TestAnswersGoToTheLoginThatTalks(t *testing.T) {
	srv := server(t)
	bobID, err := telehash.GenerateIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ma := newMesh(t, func(telehash.Hashname) bool { return true })
	meshOf := func() *telehash.Mesh {
		m, err := telehash.NewMesh(context.Background(), bobID, telehash.MeshOptions{Logger: logger(), HandshakeTimeout: 3 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		return m
	}
	mb1, mb2 := meshOf(), meshOf()
	hn := bobID.Hashname()
	ba := bridgeOpts(t, srv, "alice", ma, true, Pin{JID: srv.JID("bob"), Hashname: hn})
	bb1 := bridgeOpts(t, srv, "bob", mb1, true, Pin{JID: srv.JID("alice"), Hashname: ma.Hashname()})
	waitOnline(t, ba, hn)
	waitOnline(t, bb1, ma.Hashname())
	bb2 := bridgeOpts(t, srv, "bob", mb2, true)
	deadline := time.Now().Add(10 * time.Second)
	for ba.Online()[hn] != bb2.Session().LocalJID() {
		if time.Now().After(deadline) {
			t.Fatal("Alice never saw Bob's second login")
		}
		time.Sleep(10 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	if _, err := mb1.Link(ctx, telehash.LinkInfo{Keys: ma.LinkInfo().Keys}); err != nil {
		t.Fatalf("Bob's first login linking to Alice: %v (her answers went to %s)", err, ba.Online()[hn])
	}
}
