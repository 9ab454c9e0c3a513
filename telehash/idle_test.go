package telehash

import (
	"context"
	"io"
	"testing"
	"time"
)

// waitUntil polls cond until it holds or ctx ends.
func waitUntil(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		if ctx.Err() != nil {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A link used for one stream is let go once idle: no keepalives, no
// re-linking, until the next channel links again. Open channels and Keep
// hold a link up.
func TestIdleLinkLetGo(t *testing.T) {
	ao := fastOpts()
	ao.Keepalive, ao.LinkTimeout, ao.IdleTimeout = 100*time.Millisecond, 1200*time.Millisecond, 200*time.Millisecond
	a := newTestMesh(t, "idle-a", ao)
	bo := ao
	bo.Allow = allowAll
	b := newTestMesh(t, "idle-b", bo)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b.Handle(StreamType, func(c *Channel) {
		s, err := NewStream(ctx, c)
		if err != nil {
			return
		}
		_, _ = io.Copy(s, s)
		s.Close()
	})
	linkMeshes(t, a, b)
	roundTrip := func() *Stream {
		t.Helper()
		s, err := a.OpenStream(ctx, b.Hashname(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Write([]byte("fetch")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 5)
		if _, err := io.ReadFull(s, buf); err != nil {
			t.Fatal(err)
		}
		return s
	}
	bothDown := func() bool { return !a.Up(b.Hashname()) && !b.Up(a.Hashname()) }
	handshakes := func() uint64 { return a.Stats().HandshakesSent + b.Stats().HandshakesSent }
	quiet := func(what string) {
		t.Helper()
		waitUntil(t, ctx, what+": the idle link goes down", bothDown)
		before := handshakes()
		time.Sleep(10 * ao.Keepalive)
		if n := handshakes() - before; n != 0 {
			t.Fatalf("%s: %d handshakes over an idle link that was let go", what, n)
		}
	}

	// One fetch, then nothing.
	s := roundTrip()
	s.Close()
	quiet("after one stream")

	// The next channel links again, and an open channel keeps the link up
	// with keepalives, though no data flows.
	s = roundTrip()
	time.Sleep(2 * ao.LinkTimeout)
	if !a.Up(b.Hashname()) || !b.Up(a.Hashname()) {
		t.Fatal("link with an open channel went down")
	}
	s.Close()
	quiet("after the second stream")

	// A kept link is re-linked while down, and kept up.
	release, err := a.Keep(b.Hashname())
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, ctx, "a kept link is re-linked", func() bool { return a.Up(b.Hashname()) && b.Up(a.Hashname()) })
	time.Sleep(2 * ao.LinkTimeout)
	if !a.Up(b.Hashname()) {
		t.Fatal("kept link went down")
	}
	release()
	release()
	quiet("after Keep was released")
	if _, err := a.Keep("nobody"); err == nil {
		t.Error("Keep of an unknown peer succeeded")
	}
}

// A peer that handshaked to us is created before its handshake brings it
// up: the monitor must not remove it in between (it did, as "down since
// year 1", so the next handshake started a new session and reset the
// first one's channels).
func TestNewPeerNotRemovedBeforeUp(t *testing.T) {
	a := newTestMesh(t, "fresh-a", fastOpts())
	b := mustIdentity(t, "fresh-b")
	p, err := a.peer(b.Hashname(), b.kp.Public[:])
	if err != nil {
		t.Fatal(err)
	}
	p.tick(time.Now())
	if a.lookup(b.Hashname()) != p {
		t.Fatal("a new peer was removed before its handshake was applied")
	}
}
