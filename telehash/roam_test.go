package telehash

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// nodeOpts are the timers of thnode (internal/thnode: a keepalive every
// 10 s), where roaming is slow if anything waits for them.
func nodeOpts() MeshOptions {
	return MeshOptions{Keepalive: 10 * time.Second, HandshakeTimeout: 30 * time.Second, ChannelTimeout: 10 * time.Second}
}

// echoHandler echoes stream channels.
func echoHandler(ctx context.Context) func(*Channel) {
	return func(c *Channel) {
		s, err := NewStream(ctx, c)
		if err != nil {
			return
		}
		_, _ = io.Copy(s, s)
		s.Close()
	}
}

// pingStream writes msg on s and reads it back.
func pingStream(s *Stream, msg string) error {
	if _, err := s.Write([]byte(msg)); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(s, buf); err != nil {
		return err
	}
	if string(buf) != msg {
		return errors.New("bad echo")
	}
	return nil
}

// openAndPing opens a stream from m to peer and round-trips a message,
// retrying until ctx ends; it returns the stream.
func openAndPing(ctx context.Context, m *Mesh, peer Hashname) (*Stream, error) {
	var last error
	for ctx.Err() == nil {
		octx, cancel := context.WithTimeout(ctx, 2*time.Second)
		s, err := m.OpenStream(octx, peer, nil)
		if err == nil {
			err = pingStream(s, "hello")
			if err == nil {
				cancel()
				return s, nil
			}
			s.Abort("retry")
		}
		cancel()
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	return nil, last
}

// A watched peer restarts on another port (same identity) and links back
// to the watcher (it is its peer too): the watcher's old stream fails at
// once, and a new one works within a few seconds, over the new path.
func TestRoamPeerRestartsOnAnotherPort(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	ao := nodeOpts()
	ao.Allow = allowAll
	a := newTestMesh(t, "roam-a", ao)
	bo := nodeOpts()
	bo.Allow = allowAll
	b := newTestMesh(t, "roam-b", bo)
	b.Handle(StreamType, echoHandler(ctx))
	a.Handle(StreamType, echoHandler(ctx))
	linkMeshes(t, a, b)
	release, err := a.Keep(b.Hashname())
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	old, err := openAndPing(ctx, a, b.Hashname())
	if err != nil {
		t.Fatal(err)
	}
	// Some keepalives: the old session's at is raised.
	time.Sleep(100 * time.Millisecond)

	b.Close()
	b2 := newTestMesh(t, "roam-b", bo) // another port
	b2.Handle(StreamType, echoHandler(ctx))
	start := time.Now()
	lctx, lcancel := context.WithTimeout(ctx, 10*time.Second)
	_, err = b2.Link(lctx, a.LinkInfo())
	lcancel()
	if err != nil {
		t.Fatalf("the restarted peer cannot link back: %v", err)
	}
	octx, ocancel := context.WithTimeout(ctx, 5*time.Second)
	defer ocancel()
	s, err := openAndPing(octx, a, b2.Hashname())
	if err != nil {
		t.Fatalf("no working stream %v after the move: %v (a's path to b %v, b2 at %v)", time.Since(start), err, a.lookup(b2.Hashname()).path(), b2.Addr())
	}
	took := time.Since(start)
	s.Close()
	if err := pingStream(old, "old"); err == nil {
		t.Fatal("the old stream still works")
	}
	if got := a.lookup(b2.Hashname()).path().udp; got != b2.Addr() {
		t.Fatalf("a's path to b: %v, want %v", got, b2.Addr())
	}
	// b2 reaches a as well.
	if _, err := openAndPing(octx, b2, a.Hashname()); err != nil {
		t.Fatal(err)
	}
	t.Logf("a stream works again %v after the restart", took.Round(time.Millisecond))
}

// natProxy is a NAT in front of one client: the client sends to inside,
// the server sees it at outside's address; rebind replaces outside (the
// NAT's mapping changed, as when a laptop joins another network), and
// what the server sends to the old mapping is lost.
type natProxy struct {
	t      testing.TB
	inside *net.UDPConn
	server netip.AddrPort

	mu      sync.Mutex
	outside *net.UDPConn
	client  netip.AddrPort
}

func newNATProxy(t testing.TB, server netip.AddrPort) *natProxy {
	n := &natProxy{t: t, inside: rawUDP(t), server: server}
	n.rebind()
	go func() {
		buf := make([]byte, 65536)
		for {
			k, from, err := n.inside.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			n.client = from
			out := n.outside
			n.mu.Unlock()
			_, _ = out.WriteToUDPAddrPort(buf[:k], n.server)
		}
	}()
	return n
}

// rebind gives the NAT a new outside address; the old one is closed.
func (n *natProxy) rebind() {
	out := rawUDP(n.t)
	n.mu.Lock()
	old := n.outside
	n.outside = out
	n.mu.Unlock()
	if old != nil {
		old.Close()
	}
	go func() {
		buf := make([]byte, 65536)
		for {
			k, _, err := out.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			client := n.client
			n.mu.Unlock()
			_, _ = n.inside.WriteToUDPAddrPort(buf[:k], client)
		}
	}()
}

func (n *natProxy) outsideAddr() netip.AddrPort {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.outside.LocalAddr().(*net.UDPAddr).AddrPort()
}

func (n *natProxy) path() Path { return PathOf(n.inside.LocalAddr().(*net.UDPAddr).AddrPort()) }

// A node whose own address changed (its NAT mapping moved) gets back to
// its peers at once when it notices (Roam): the peer's path moves to the
// new address and the peer reaches it again. Before it, the peer's
// packets go to the old address and are lost.
func TestRoamOwnAddressChanges(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a := newTestMesh(t, "own-a", nodeOpts())
	a.Handle(StreamType, echoHandler(ctx))
	bo := nodeOpts()
	bo.Allow = allowAll
	b := newTestMesh(t, "own-b", bo)
	nat := newNATProxy(t, b.Addr())
	info := b.LinkInfo()
	info.Paths = []Path{nat.path()}
	if _, err := a.Link(ctx, info); err != nil {
		t.Fatal(err)
	}
	release, _ := a.Keep(b.Hashname())
	defer release()
	waitUntil(t, ctx, "b is up", func() bool { return b.Up(a.Hashname()) })
	if _, err := openAndPing(ctx, b, a.Hashname()); err != nil {
		t.Fatal(err)
	}
	// The path requests of the link's start are done (a's would tell b).
	waitUntil(t, ctx, "path requests answered", func() bool {
		_, ab := a.SeenAs(b.Hashname())
		_, ba := b.SeenAs(a.Hashname())
		return ab && ba
	})
	nat.rebind()
	// b still sends to the old mapping: nothing gets through.
	octx, ocancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	if _, err := openAndPing(octx, b, a.Hashname()); err == nil {
		t.Fatal("b reached a at its old address: the test tests nothing")
	}
	ocancel()
	start := time.Now()
	a.Roam()
	octx, ocancel = context.WithTimeout(ctx, 3*time.Second)
	defer ocancel()
	if _, err := openAndPing(octx, b, a.Hashname()); err != nil {
		t.Fatalf("b cannot reach a after Roam: %v (b's path to a %v, the NAT is at %v)", err, b.lookup(a.Hashname()).path(), nat.outsideAddr())
	}
	if got := b.lookup(a.Hashname()).path().udp; got != nat.outsideAddr() {
		t.Fatalf("b's path to a %v, want %v", got, nat.outsideAddr())
	}
	t.Logf("b reaches a again %v after Roam", time.Since(start).Round(time.Millisecond))
}

// A link whose path died (here: the relay it went through stops) goes
// down at the link timeout, and is then probed on the paths the peer
// listed in its path request too: it is back up on one of them within
// a second or two (not while the link is up: a link through a relay
// stays there while the relay works).
func TestRoamLinkTimeoutTriesLearnedPaths(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ao := nodeOpts()
	ao.Keepalive, ao.LinkTimeout = time.Second, 3*time.Second
	a := newTestMesh(t, "learn-a", ao)
	bo := ao
	bo.Allow = allowAll
	b := newTestMesh(t, "learn-b", bo)
	b.Handle(StreamType, echoHandler(ctx))
	relay := newLossyProxy(t, b.Addr(), 0, 0)
	info := b.LinkInfo()
	info.Paths = []Path{relay.path()}
	if _, err := a.Link(ctx, info); err != nil {
		t.Fatal(err)
	}
	release, _ := a.Keep(b.Hashname())
	defer release()
	pa := a.lookup(b.Hashname())
	waitUntil(t, ctx, "a learns b's own path", func() bool { return len(pa.learnedPaths()) > 0 })
	if got := pa.path().udp; got != relay.conn.LocalAddr().(*net.UDPAddr).AddrPort() {
		t.Fatalf("a's path to b %v, want the relay", got)
	}
	relay.mu.Lock()
	relay.drop = 1 // the relay dies
	relay.mu.Unlock()
	start := time.Now()
	waitUntil(t, ctx, "a moves to b's own path", func() bool { return pa.path().udp == b.Addr() })
	took := time.Since(start)
	if _, err := openAndPing(ctx, a, b.Hashname()); err != nil {
		t.Fatal(err)
	}
	if took > ao.LinkTimeout+3*time.Second {
		t.Fatalf("back up after %v, link timeout %v", took, ao.LinkTimeout)
	}
	t.Logf("a on b's own path %v after the relay died (keepalive %v, link timeout %v, probes %d)",
		took.Round(time.Millisecond), ao.Keepalive, ao.LinkTimeout, pa.roam.probes)
}

// The interface watcher calls Roam when the machine's addresses change.
func TestRoamInterfaceWatcher(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a := newTestMesh(t, "watch-a", nodeOpts())
	bo := nodeOpts()
	bo.Allow = allowAll
	b := newTestMesh(t, "watch-b", bo)
	linkMeshes(t, a, b)
	release, _ := a.Keep(b.Hashname())
	defer release()
	var mu sync.Mutex
	ifaddrs := []net.Addr{&net.IPNet{IP: net.IPv4(192, 0, 2, 1), Mask: net.CIDRMask(24, 32)}}
	a.wg.Add(1)
	go a.watchInterfaces(func() ([]net.Addr, error) {
		mu.Lock()
		defer mu.Unlock()
		return ifaddrs, nil
	}, nil, 10*time.Millisecond)
	time.Sleep(50 * time.Millisecond)
	sent := a.Stats().HandshakesSent
	if sent2 := a.Stats().HandshakesSent; sent2 != sent {
		t.Fatalf("handshakes sent with no change")
	}
	mu.Lock()
	ifaddrs = []net.Addr{&net.IPNet{IP: net.IPv4(198, 51, 100, 7), Mask: net.CIDRMask(24, 32)}}
	mu.Unlock()
	waitUntil(t, ctx, "a handshakes b after the change", func() bool { return a.Stats().HandshakesSent > sent })
}

// A peer that moved and does not know us (it restarted on another port,
// and only links to its router) is found again through the router: our
// keepalive goes unanswered, and the probes go to every path of the
// peer, its router's relay among them; the router introduces us to the
// peer where it is now.
func TestRoamPeerMovedBehindRouter(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opts := nodeOpts()
	opts.Keepalive, opts.LinkTimeout = time.Second, 3*time.Second
	ropts := opts
	ropts.Router, ropts.Allow = true, allowAll
	r := newTestMesh(t, "rroam-r", ropts)
	a := newTestMesh(t, "rroam-a", opts)
	bopts := opts
	bopts.Allow = func(h Hashname) bool { return h == a.Hashname() }
	b := newTestMesh(t, "rroam-b", bopts)
	for _, m := range []*Mesh{a, b} {
		if _, err := m.AddRouter(ctx, r.LinkInfo()); err != nil {
			t.Fatal(err)
		}
	}
	b.Handle(StreamType, echoHandler(ctx))
	linkMeshes(t, a, b)
	release, _ := a.Keep(b.Hashname())
	defer release()
	if _, err := openAndPing(ctx, a, b.Hashname()); err != nil {
		t.Fatal(err)
	}
	b.Close()
	b2 := newTestMesh(t, "rroam-b", bopts) // another port; knows only r
	b2.Handle(StreamType, echoHandler(ctx))
	if _, err := b2.AddRouter(ctx, r.LinkInfo()); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	waitUntil(t, ctx, "a links to b where it is now", func() bool { return b2.Up(a.Hashname()) })
	if _, err := openAndPing(ctx, a, b2.Hashname()); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if took > opts.LinkTimeout+5*time.Second {
		t.Fatalf("found again after %v", took)
	}
	t.Logf("a reaches the moved b again after %v (a's path %v, b2 at %v)", took.Round(time.Millisecond), a.lookup(b2.Hashname()).path(), b2.Addr())
}
