package telehash

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"
)

// strangerHandshakes returns n cloaked link handshakes to m from n
// different identities m does not know.
func strangerHandshakes(t testing.TB, m *Mesh, n int, seed string) [][]byte {
	t.Helper()
	key, err := Base32Decode(m.LinkInfo().Keys["3a"])
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]byte, n)
	for i := range out {
		r := newDetRand(fmt.Sprintf("%s-%d", seed, i))
		id, err := GenerateIdentity(r)
		if err != nil {
			t.Fatal(err)
		}
		x, err := NewExchange(r, id, key)
		if err != nil {
			t.Fatal(err)
		}
		hs, err := x.Handshake()
		if err != nil {
			t.Fatal(err)
		}
		if out[i], err = Cloak(r, hs, 1); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// sendAll sends every datagram from conn to m and waits until m handled
// them all (the workers included).
func sendAll(t *testing.T, ctx context.Context, m *Mesh, conn *net.UDPConn, pkts [][]byte) {
	t.Helper()
	before := m.Stats().Received
	for _, p := range pkts {
		if _, err := conn.WriteToUDPAddrPort(p, m.Addr()); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, ctx, "the handshakes are handled", func() bool {
		return m.Stats().Received >= before+uint64(len(pkts)) && m.hsPending.Load() == 0
	})
}

// Handshakes from one source beyond its limit are dropped before any
// X25519; another source has its own limit; a linked peer is not held
// up, and the handshakes of its session cost no X25519 at all.
func TestHandshakeRateLimitPerSource(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a := newTestMesh(t, "limit-a", liveOpts())
	bo := liveOpts()
	// Practically no refill: the burst is all a source gets.
	bo.HandshakeRate, bo.HandshakeBurst, bo.HandshakeQueue = 1e-9, 5, 64
	bo.Allow = func(h Hashname) bool { return h == a.Hashname() }
	b := newTestMesh(t, "limit-b", bo)
	linkMeshes(t, a, b)
	linked := b.Stats()
	if linked.HandshakesOpened != 1 {
		t.Fatalf("linking opened %d handshakes with X25519, want 1", linked.HandshakesOpened)
	}

	pkts := strangerHandshakes(t, b, 50, "limit")
	one := rawUDP(t)
	calls := x25519Calls.Load()
	sendAll(t, ctx, b, one, pkts)
	// One X25519 each for the 5 let through (refused before verifying).
	if got := x25519Calls.Load() - calls; got != 5 {
		t.Errorf("one source: %d X25519 operations for 50 handshakes, want 5", got)
	}
	s := b.Stats()
	if got := s.HandshakesOpened - linked.HandshakesOpened; got != 5 {
		t.Errorf("one source: %d of 50 handshakes opened with X25519, want 5", got)
	}
	if got := s.DropRateLimited - linked.DropRateLimited; got != 45 {
		t.Errorf("one source: %d handshakes rate-limited, want 45", got)
	}
	if got := s.DropUnauthorized - linked.DropUnauthorized; got != 5 {
		t.Errorf("one source: %d unauthorized, want 5", got)
	}
	// Another source gets its own burst.
	sendAll(t, ctx, b, rawUDP(t), pkts[:10])
	if got := b.Stats().HandshakesOpened - s.HandshakesOpened; got != 5 {
		t.Errorf("second source: %d of 10 opened, want 5", got)
	}

	// The linked peer has its own limit, and the handshakes of its
	// session (keepalives both ways, and their answers) cost no X25519.
	pa, pb := a.lookup(b.Hashname()), b.lookup(a.Hashname())
	before, sent := b.Stats().HandshakesOpened, a.Stats().HandshakesSent+b.Stats().HandshakesSent
	calls = x25519Calls.Load()
	for i := range 6 {
		p := pa
		if i%2 == 1 {
			p = pb
		}
		p.keepalive([]pathAddr{p.path()})
		waitUntil(t, ctx, "the keepalive is answered", func() bool { return pa.x.At() == pb.x.At() })
	}
	if got := a.Stats().HandshakesSent + b.Stats().HandshakesSent - sent; got != 12 {
		t.Errorf("%d handshakes sent for 6 keepalives, want 12", got)
	}
	if got := b.Stats().HandshakesOpened - before; got != 0 {
		t.Errorf("keepalives of a known session: %d opened with X25519", got)
	}
	if got := x25519Calls.Load() - calls; got != 0 {
		t.Errorf("keepalives of a known session, sent and answered: %d X25519 operations", got)
	}
	runStreamPair(t, a, b, 16<<10)
}

func TestSourceLimiter(t *testing.T) {
	l := newSourceLimiter(2, 3, 2)
	now := time.Unix(1000, 0)
	src := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port) }
	take := func(s netip.AddrPort, n int) int {
		ok := 0
		for range n {
			if l.allow(udpPath(s), now) {
				ok++
			}
		}
		return ok
	}
	if got := take(src(1), 10); got != 3 {
		t.Fatalf("burst: %d allowed, want 3", got)
	}
	now = now.Add(time.Second) // 2 a second
	if got := take(src(1), 10); got != 2 {
		t.Fatalf("refill: %d allowed, want 2", got)
	}
	if got := take(src(2), 10); got != 3 {
		t.Fatalf("second source: %d allowed, want 3", got)
	}
	// The map is full: a third source shares the overflow bucket.
	if got := take(src(3), 10) + take(src(4), 10); got != 3 {
		t.Fatalf("overflow: %d allowed, want 3", got)
	}
	if len(l.buckets) != 2 {
		t.Fatalf("%d buckets, want 2", len(l.buckets))
	}
	// Once refilled, buckets are forgotten to make room.
	now = now.Add(time.Minute)
	if got := take(src(5), 1); got != 1 || len(l.buckets) != 1 {
		t.Fatalf("after the sweep: %d allowed, %d buckets", got, len(l.buckets))
	}
}
