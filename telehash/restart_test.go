package telehash

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"
)

// TestMeshPeerRestart restarts a peer (same identity and address, new
// process state) twice: once it links back itself, once it stays passive
// and the other side's keepalive re-links. Old channels fail, new ones
// work, and OnLink reports the changes.
func TestMeshPeerRestart(t *testing.T) {
	var mu sync.Mutex
	var events []bool
	ao := fastOpts()
	ao.OnLink = func(_ Hashname, up bool) {
		mu.Lock()
		events = append(events, up)
		mu.Unlock()
	}
	a := newTestMesh(t, "restart-a", ao)
	bo := fastOpts()
	bo.Allow = allowAll
	b := newTestMesh(t, "restart-b", bo)
	linkMeshes(t, a, b)
	bo.Listen = b.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// echo handler for every incarnation of b
	echo := func(c *Channel) {
		s, _ := NewStream(ctx, c)
		io.Copy(s, s)
		s.Close()
	}
	b.Handle(StreamType, echo)
	roundTrip := func(s *Stream) error {
		if _, err := s.Write([]byte("ping")); err != nil {
			return err
		}
		buf := make([]byte, 4)
		_, err := io.ReadFull(s, buf)
		if err == nil && string(buf) != "ping" {
			err = errors.New("bad echo")
		}
		return err
	}
	old, err := a.OpenStream(ctx, b.Hashname(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := roundTrip(old); err != nil {
		t.Fatal(err)
	}

	for round, passive := range []bool{false, true} {
		b.Close()
		var b2 *Mesh
		for b2 == nil { // the port may take a moment to be free
			if b2, err = NewMesh(ctx, mustIdentity(t, "restart-b"), bo); err != nil {
				time.Sleep(10 * time.Millisecond)
			}
		}
		t.Cleanup(func() { b2.Close() })
		b2.Handle(StreamType, echo)
		b = b2
		if !passive {
			lctx, lcancel := context.WithTimeout(ctx, 5*time.Second)
			if _, err := b2.Link(lctx, a.LinkInfo()); err != nil {
				t.Fatalf("round %d: restarted peer cannot link back: %v", round, err)
			}
			lcancel()
		}
		// the old stream fails: the session was replaced (or the link
		// went down before)
		if err := roundTrip(old); !errors.Is(err, ErrSessionReset) && !errors.Is(err, ErrLinkDown) {
			t.Fatalf("round %d: old stream: %v", round, err)
		}
		start := time.Now()
		for !b2.Up(a.Hashname()) {
			if time.Since(start) > 5*time.Second {
				t.Fatalf("round %d: no re-link", round)
			}
			time.Sleep(5 * time.Millisecond)
		}
		if old, err = a.OpenStream(ctx, b2.Hashname(), nil); err != nil {
			t.Fatal(err)
		}
		if err := roundTrip(old); err != nil {
			t.Fatalf("round %d: new stream: %v", round, err)
		}
		t.Logf("round %d (passive %v): re-linked in %v", round, passive, time.Since(start).Round(time.Millisecond))
	}
	mu.Lock()
	defer mu.Unlock()
	if len(events) == 0 || !events[0] {
		t.Fatalf("OnLink events %v", events)
	}
	t.Logf("OnLink events %v", events)
}

// A peer restarted on another port within a second or two, whose at is
// not above the old session's (here the old session's keepalives raised
// it), is still taken up at once: its stale handshake is answered with a
// raised at, and its fresh answer starts the new session. The old path
// and session stay until then.
func TestRestartOnNewPortWithStaleAt(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opts := liveOpts()
	a := newTestMesh(t, "stale-a", opts)
	bo := opts
	bo.Allow = allowAll
	b := newTestMesh(t, "stale-b", bo)
	linkMeshes(t, a, b)
	pa, pb := a.lookup(b.Hashname()), b.lookup(a.Hashname())
	for range 10 {
		pa.keepalive([]pathAddr{pa.path()})
		waitUntil(t, ctx, "the keepalive is answered", func() bool { return pa.x.At() == pb.x.At() })
	}
	a.Close()
	a2 := newTestMesh(t, "stale-a", opts)
	sessions := b.Stats().Sessions
	start := time.Now()
	linkMeshes(t, a2, b)
	// b was up (the old session) all along: wait for the new one.
	waitUntil(t, ctx, "b takes up the restarted peer", func() bool { return b.Stats().Sessions > sessions })
	if b.Stats().Sessions != sessions+1 || pb.path() != udpPath(a2.Addr()) {
		t.Fatalf("b: %d new sessions, path %v, want 1 and %v", b.Stats().Sessions-sessions, pb.path(), a2.Addr())
	}
	if b.Stats().DropReplay == 0 {
		t.Fatal("the restarted peer's first handshake was not stale: the test tests nothing")
	}
	t.Logf("taken up in %v", time.Since(start).Round(time.Millisecond))
	runStreamPair(t, a2, b, 16<<10)
}

// A peer restarted within a second (a git command after another, each a
// new process with the same identity) links with a stale handshake,
// which a worker opens, and sends its first channel packets as soon as
// it is up: they may arrive before the new session exists, and are kept
// until it does rather than dropped (and resent after a timeout).
func TestRestartedPeerFirstPacketsKept(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ao := liveOpts()
	ao.Allow = allowAll
	alice := newTestMesh(t, "kept-alice", ao)
	alice.Handle(StreamType, func(c *Channel) {
		s, err := NewStream(ctx, c)
		if err != nil {
			return
		}
		_, _ = io.Copy(s, s)
		s.Close()
	})
	for i := range 5 {
		bob := newTestMesh(t, "kept-bob", liveOpts())
		if _, err := bob.Link(ctx, alice.LinkInfo()); err != nil {
			t.Fatal(err)
		}
		s, err := bob.OpenStream(ctx, alice.Hashname(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Write([]byte("fetch")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 5)
		if _, err := io.ReadFull(s, buf); err != nil {
			t.Fatalf("process %d: %v", i, err)
		}
		s.Close()
		bob.Close()
	}
	if s := alice.Stats(); s.DropDecrypt != 0 || s.Sessions != 5 {
		t.Fatalf("%d channel packets of new sessions dropped, %d sessions: %+v", s.DropDecrypt, s.Sessions, s)
	}
}
