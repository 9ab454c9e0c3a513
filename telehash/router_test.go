package telehash

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// routedWorld is a router R and two nodes A and B that use it.
type routedWorld struct {
	r, a, b *Mesh
	// blocked drops direct traffic between A and B (both ways).
	blocked atomic.Bool
}

// newRoutedWorld starts R (routing for routeFor), A and B (B admits A)
// and makes R the default router of A and B.
func newRoutedWorld(t testing.TB, name string, routeFor func(Hashname) bool, blocked bool) *routedWorld {
	t.Helper()
	opts := fastOpts()
	opts.ChannelTimeout = 10 * time.Second
	ropts := opts
	ropts.Router, ropts.RouteFor, ropts.Allow = true, routeFor, allowAll
	ropts.RelayRate = 64 << 20
	w := &routedWorld{r: newTestMesh(t, name+"-r", ropts)}
	w.a = newTestMesh(t, name+"-a", opts)
	bopts := opts
	bopts.Allow = func(h Hashname) bool { return h == w.a.Hashname() }
	w.b = newTestMesh(t, name+"-b", bopts)
	w.blocked.Store(blocked)
	w.a.testDrop = func(to pathAddr) bool { return w.blocked.Load() && to == udpPath(w.b.Addr()) }
	w.b.testDrop = func(to pathAddr) bool { return w.blocked.Load() && to == udpPath(w.a.Addr()) }
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	for _, m := range []*Mesh{w.a, w.b} {
		if _, err := m.AddRouter(ctx, w.r.LinkInfo()); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

// link links A to B knowing only B's keys: through the router.
func (w *routedWorld) link(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := w.a.Link(ctx, LinkInfo{Keys: w.b.LinkInfo().Keys}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b sees a up", func() bool { return w.b.Up(w.a.Hashname()) })
}

// paths returns A's path to B and B's path to A.
func (w *routedWorld) paths() (pathAddr, pathAddr) {
	return w.a.lookup(w.b.Hashname()).path(), w.b.lookup(w.a.Hashname()).path()
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRouterRelayOnly: A and B cannot reach each other directly; the
// router introduces them and relays a 1 MiB stream each way.
func TestRouterRelayOnly(t *testing.T) {
	w := newRoutedWorld(t, "relay-only", nil, true)
	w.link(t)
	runStreamPair(t, w.a, w.b, 1<<20)
	ab, ba := w.paths()
	if !ab.isPipe() || !ba.isPipe() {
		t.Fatalf("paths %v and %v, want the relay", ab, ba)
	}
	s := w.r.Stats()
	if s.Relayed < 1500 || s.PeerRequests == 0 {
		t.Fatalf("router stats %+v: want >= 1500 packets relayed", s.RoutingStats)
	}
	waitFor(t, "b tries a's address", func() bool { return w.b.Stats().Punches > 0 })
	t.Logf("router: %+v", s.RoutingStats)
}

// TestRouterHolePunch: with direct traffic possible, the introduction
// ends on a direct path; the router then stops and the stream goes on.
func TestRouterHolePunch(t *testing.T) {
	w := newRoutedWorld(t, "punch", nil, false)
	w.link(t)
	waitFor(t, "direct paths", func() bool {
		ab, ba := w.paths()
		return ab == udpPath(w.b.Addr()) && ba == udpPath(w.a.Addr())
	})
	w.r.Close()
	relayed := w.r.Stats().Relayed
	runStreamPair(t, w.a, w.b, 1<<20)
	if ab, ba := w.paths(); ab.isPipe() || ba.isPipe() {
		t.Fatalf("paths %v and %v, want direct", ab, ba)
	}
	if got := w.r.Stats().Relayed; got != relayed {
		t.Fatalf("the closed router relayed %d packets", got-relayed)
	}
}

// TestRouterFallback: a direct path that dies mid-stream is left for the
// relay, and taken again when it works again.
func TestRouterFallback(t *testing.T) {
	w := newRoutedWorld(t, "fallback", nil, false)
	w.link(t)
	waitFor(t, "direct paths", func() bool {
		ab, ba := w.paths()
		return !ab.isPipe() && !ba.isPipe()
	})
	t.Cleanup(func() {
		if t.Failed() {
			ab, ba := w.paths()
			t.Logf("paths %v %v; router %+v; a %+v; b %+v", ab, ba, w.r.Stats(), w.a.Stats(), w.b.Stats())
		}
	})
	base := w.a.Stats().Received
	go func() { // mid-stream: after some 700 KB arrived
		for w.a.Stats().Received < base+500 {
			time.Sleep(time.Millisecond)
		}
		w.blocked.Store(true)
	}()
	runStreamPair(t, w.a, w.b, 2<<20)
	if w.r.Stats().Relayed == 0 {
		t.Fatal("nothing relayed after the direct path died")
	}
	if ab, ba := w.paths(); !ab.isPipe() || !ba.isPipe() {
		t.Fatalf("paths %v and %v, want the relay", ab, ba)
	}
	w.blocked.Store(false)
	waitFor(t, "direct again", func() bool {
		ab, ba := w.paths()
		return !ab.isPipe() && !ba.isPipe()
	})
}

// TestRouterRefusesStranger: a node the router does not route for gets
// nothing: no connect reaches B, and the requests are counted.
func TestRouterRefusesStranger(t *testing.T) {
	var w *routedWorld
	w = newRoutedWorld(t, "stranger", func(h Hashname) bool {
		return h == w.a.Hashname() || h == w.b.Hashname()
	}, true)
	c := newTestMesh(t, "stranger-c", fastOpts())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.AddRouter(ctx, w.r.LinkInfo()); err != nil {
		t.Fatal(err)
	}
	lctx, lcancel := context.WithTimeout(ctx, 2*time.Second)
	defer lcancel()
	_, err := c.Link(lctx, LinkInfo{Keys: w.b.LinkInfo().Keys})
	if err == nil || errors.Is(err, ErrLinkTimeout) == false && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("stranger linked through the router: %v", err)
	}
	if s := w.r.Stats(); s.PeerRefused == 0 || s.PeerRefused != s.PeerRequests {
		t.Fatalf("router stats %+v: want every peer request refused", s.RoutingStats)
	}
	if s := w.b.Stats(); s.Connects != 0 || s.ConnectRefused != 0 {
		t.Fatalf("b got connects: %+v", s.RoutingStats)
	}
	// A and B still get through.
	w.link(t)
	runStreamPair(t, w.a, w.b, 64<<10)
}

// TestNotRouter: a mesh without Router introduces nobody.
func TestNotRouter(t *testing.T) {
	opts := fastOpts()
	opts.Allow = allowAll
	r := newTestMesh(t, "norouter-r", opts)
	a := newTestMesh(t, "norouter-a", fastOpts())
	bopts := fastOpts()
	bopts.Allow = allowAll
	b := newTestMesh(t, "norouter-b", bopts)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, m := range []*Mesh{a, b} {
		if _, err := m.AddRouter(ctx, r.LinkInfo()); err != nil {
			t.Fatal(err)
		}
	}
	lctx, lcancel := context.WithTimeout(ctx, 2*time.Second)
	defer lcancel()
	if _, err := a.Link(lctx, LinkInfo{Keys: b.LinkInfo().Keys}); err == nil {
		t.Fatal("linked through a mesh that is not a router")
	}
	if s := r.Stats(); s.PeerRefused == 0 || s.Relayed != 0 {
		t.Fatalf("stats %+v", s.RoutingStats)
	}
}

// TestLinkVia names the router per link ("peer" path) instead of as a
// default router.
func TestLinkVia(t *testing.T) {
	ropts := fastOpts()
	ropts.Router, ropts.Allow = true, allowAll
	r := newTestMesh(t, "via-r", ropts)
	a := newTestMesh(t, "via-a", fastOpts())
	bopts := fastOpts()
	bopts.Allow = allowAll
	b := newTestMesh(t, "via-b", bopts)
	a.testDrop = func(to pathAddr) bool { return to == udpPath(b.Addr()) }
	b.testDrop = func(to pathAddr) bool { return to == udpPath(a.Addr()) }
	linkMeshes(t, a, r)
	linkMeshes(t, b, r)
	release, err := b.Keep(r.Hashname())
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if len(a.Routers()) != 0 {
		t.Fatal("a has default routers")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := a.LinkVia(ctx, LinkInfo{Keys: b.LinkInfo().Keys}, r.Hashname()); err != nil {
		t.Fatal(err)
	}
	runStreamPair(t, a, b, 64<<10)
	if r.Stats().Relayed == 0 {
		t.Fatal("nothing relayed")
	}
}

// TestPreferDirect: a fresh packet over a pipe does not take the path
// from a UDP path that brought one within directHold; UDP always does.
func TestPreferDirect(t *testing.T) {
	m := newTestMesh(t, "prefer", fastOpts())
	x, err := NewExchange(newDetRand("x"), m.id, mustIdentity(t, "prefer-peer").Key(CS3a))
	if err != nil {
		t.Fatal(err)
	}
	p := newPeer(m, "peer", x)
	udp := udpPath(netipAddrPort("127.0.0.1:9"))
	pipe := pipePath(&memPipe{name: "pipe"})
	p.received(pipe)
	if p.path() != pipe {
		t.Fatalf("first path %v, want the pipe", p.path())
	}
	p.received(udp)
	if p.path() != udp {
		t.Fatalf("path %v, want UDP at once", p.path())
	}
	p.received(pipe)
	if p.path() != udp {
		t.Fatalf("path %v: the pipe took it from a working UDP path", p.path())
	}
	p.lastDirect.Store(time.Now().Add(-directHold).UnixNano())
	p.received(pipe)
	if p.path() != pipe {
		t.Fatalf("path %v: the pipe did not take it from a silent UDP path", p.path())
	}
}

// TestRelayOnlyFromPartner: packets bearing a relayed token are forwarded
// only when they come from the other side's own path: a stranger who
// learnt a token cannot use the router to reach the peer.
func TestRelayOnlyFromPartner(t *testing.T) {
	w := newRoutedWorld(t, "partner", nil, true)
	w.link(t)
	w.r.routing.mu.Lock()
	var toks []Token
	for tok := range w.r.routing.routes {
		toks = append(toks, tok)
	}
	w.r.routing.mu.Unlock()
	if len(toks) == 0 {
		t.Fatal("router has no routes")
	}
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	before := w.r.Stats()
	bBefore, aBefore := w.b.Stats().Received, w.a.Stats().Received
	for _, tok := range toks {
		pkt := append(append([]byte{0, 0}, tok[:]...), make([]byte, 60)...)
		c, err := Cloak(newDetRand("s"), pkt, 1)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.WriteToUDPAddrPort(c, w.r.Addr()); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "router drops", func() bool {
		return w.r.Stats().RelayDropped >= before.RelayDropped+uint64(len(toks))
	})
	if got := w.r.Stats().Relayed; got != before.Relayed {
		t.Fatalf("router relayed %d packets from a stranger", got-before.Relayed)
	}
	time.Sleep(50 * time.Millisecond)
	// Keepalives may still arrive; what the stranger sent must not.
	if da, db := w.a.Stats().Received-aBefore, w.b.Stats().Received-bBefore; da+db > 20 {
		t.Fatalf("a and b received %d and %d packets", da, db)
	}
}

// TestRelayRateLive: SetRelayRate applies to a running router: a low
// rate drops what goes over it, and no bound lets the same stream
// through at once.
func TestRelayRateLive(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	w := newRoutedWorld(t, "relay-rate", nil, true)
	w.b.Handle(StreamType, echoHandler(ctx))
	w.link(t)
	if got := w.r.RelayRate(); got != 64<<20 {
		t.Fatalf("RelayRate %d, want the option's %d", got, 64<<20)
	}
	w.r.SetRelayRate(2000)
	before := w.r.Stats().RelayDropped
	s, err := w.a.OpenStream(ctx, w.b.Hashname(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	data := testData(256<<10, 3)
	done := make(chan error, 1)
	go func() {
		if _, err := s.Write(data); err != nil {
			done <- err
			return
		}
		buf := make([]byte, len(data))
		_, err := io.ReadFull(s, buf)
		if err == nil && !bytes.Equal(buf, data) {
			err = errors.New("bad echo")
		}
		done <- err
	}()
	waitFor(t, "the router drops over 2000 B/s", func() bool { return w.r.Stats().RelayDropped > before+10 })
	select {
	case err := <-done:
		t.Fatalf("256 KiB echoed at 2000 B/s (err %v)", err)
	default:
	}
	w.r.SetRelayRate(-1)
	if got := w.r.RelayRate(); got >= 0 {
		t.Fatalf("RelayRate %d after SetRelayRate(-1)", got)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal("the stream did not get through with no bound")
	}
	w.r.SetRelayRate(0)
	if got := w.r.RelayRate(); got != DefaultRelayRate {
		t.Fatalf("RelayRate %d after SetRelayRate(0), want the default", got)
	}
}
