package telehash

import (
	"context"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// wireProxy relays UDP between a client mesh and a server mesh, which
// each see the other at the proxy's address, and records every datagram
// both ways, to replay all of them later.
type wireProxy struct {
	conn   *net.UDPConn
	server netip.AddrPort

	mu       sync.Mutex
	client   netip.AddrPort // the last sender that is not the server
	recorded []recorded
}

type recorded struct {
	pkt      []byte
	toServer bool
}

func newWireProxy(t testing.TB, server netip.AddrPort) *wireProxy {
	p := &wireProxy{conn: rawUDP(t), server: server}
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := p.conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			pkt := append([]byte(nil), buf[:n]...)
			p.mu.Lock()
			toServer := from != p.server
			to := p.server
			if toServer {
				p.client = from
			} else {
				to = p.client
			}
			p.recorded = append(p.recorded, recorded{pkt, toServer})
			p.mu.Unlock()
			if to.IsValid() {
				_, _ = p.conn.WriteToUDPAddrPort(pkt, to)
			}
		}
	}()
	return p
}

func (p *wireProxy) addr() netip.AddrPort { return p.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

func (p *wireProxy) path() Path {
	a := p.addr()
	return Path{Type: "udp4", IP: a.Addr().String(), Port: int(a.Port())}
}

// replayFrom sends every datagram recorded so far again, each to where
// it went (the server, or the current client), from src.
func (p *wireProxy) replayFrom(t testing.TB, src *net.UDPConn) int {
	p.mu.Lock()
	recs, client := append([]recorded(nil), p.recorded...), p.client
	p.mu.Unlock()
	for _, r := range recs {
		to := client
		if r.toServer {
			to = p.server
		}
		if _, err := src.WriteToUDPAddrPort(r.pkt, to); err != nil {
			t.Fatal(err)
		}
	}
	return len(recs)
}

// listener counts the datagrams a socket receives.
type listener struct {
	conn *net.UDPConn
	n    atomic.Int64
}

func newListener(t testing.TB) *listener {
	l := &listener{conn: rawUDP(t)}
	go func() {
		buf := make([]byte, 65536)
		for {
			if _, _, err := l.conn.ReadFromUDPAddrPort(buf); err != nil {
				return
			}
			l.n.Add(1)
		}
	}()
	return l
}

// replayWorld is two meshes behind a recording proxy, and a third
// address an attacker replays from.
type replayWorld struct {
	t      *testing.T
	ctx    context.Context
	a, b   *Mesh
	proxy  *wireProxy
	third  *listener
	runs   atomic.Int64 // b's handler runs
	events atomic.Int64 // OnLink calls on either side
}

func newReplayWorld(t *testing.T, ctx context.Context, opts MeshOptions) *replayWorld {
	w := &replayWorld{t: t, ctx: ctx, third: newListener(t)}
	opts.OnLink = func(Hashname, bool) { w.events.Add(1) }
	w.a = newTestMesh(t, "rp-a", opts)
	bo := opts
	bo.Allow = allowAll
	w.b = newTestMesh(t, "rp-b", bo)
	w.b.Handle(StreamType, w.echo)
	w.proxy = newWireProxy(t, w.b.Addr())
	return w
}

func (w *replayWorld) echo(c *Channel) {
	w.runs.Add(1)
	s, err := NewStream(w.ctx, c)
	if err != nil {
		return
	}
	_, _ = io.Copy(s, s)
	s.Close()
}

// link links a to b through the proxy.
func (w *replayWorld) link(a *Mesh) {
	w.t.Helper()
	info := w.b.LinkInfo()
	info.Paths = []Path{w.proxy.path()}
	if _, err := a.Link(w.ctx, info); err != nil {
		w.t.Fatal(err)
	}
	waitUntil(w.t, w.ctx, "b is up", func() bool { return w.b.Up(a.Hashname()) })
}

// roundTrip sends a message on s and reads its echo.
func (w *replayWorld) roundTrip(s *Stream, msg string) {
	w.t.Helper()
	if _, err := s.Write([]byte(msg)); err != nil {
		w.t.Fatalf("write %q: %v", msg, err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(s, buf); err != nil || string(buf) != msg {
		w.t.Fatalf("echo of %q: %q, %v", msg, buf, err)
	}
}

// fetch opens a stream from a, exchanges a message, and closes it.
func (w *replayWorld) fetch(a *Mesh) {
	w.t.Helper()
	s, err := a.OpenStream(w.ctx, w.b.Hashname(), nil)
	if err != nil {
		w.t.Fatal(err)
	}
	w.roundTrip(s, "fetch")
	if err := s.CloseWrite(); err != nil {
		w.t.Fatal(err)
	}
	if _, err := io.ReadAll(s); err != nil {
		w.t.Fatal(err)
	}
	s.Close()
}

// settle waits until m handled everything src sent it so far: a one
// byte datagram sent last is dropped as malformed after the rest, then
// the handshake workers finish.
func (w *replayWorld) settle(m *Mesh, src *net.UDPConn) {
	w.t.Helper()
	before := m.Stats().DropMalformed
	if _, err := src.WriteToUDPAddrPort([]byte{0}, m.Addr()); err != nil {
		w.t.Fatal(err)
	}
	waitUntil(w.t, w.ctx, "the replay is handled", func() bool {
		return m.Stats().DropMalformed > before && m.hsPending.Load() == 0
	})
}

type replaySnapshot struct {
	runs, events               int64
	aSent, bSent, aSess, bSess uint64
	aAccepted, bAccepted       uint64
}

func (w *replayWorld) snapshot(a *Mesh) replaySnapshot {
	as, bs := a.Stats(), w.b.Stats()
	return replaySnapshot{runs: w.runs.Load(), events: w.events.Load(),
		aSent: as.HandshakesSent, bSent: bs.HandshakesSent, aSess: as.Sessions, bSess: bs.Sessions,
		aAccepted: as.ChannelsAccepted, bAccepted: bs.ChannelsAccepted}
}

// replayAll replays everything the proxy saw, from the proxy's address
// (where each side sees the other) and from a third address, and checks
// it had no effect beyond dropped packets: no handshake sent (so none
// to the replayer), no datagram to the third address, no new session,
// no link event, no handler run, and paths where they were.
func (w *replayWorld) replayAll(when string, a *Mesh) {
	w.t.Helper()
	before := w.snapshot(a)
	pathsBefore := w.paths(a)
	for _, src := range []*net.UDPConn{w.proxy.conn, w.third.conn} {
		n := w.proxy.replayFrom(w.t, src)
		w.settle(w.b, src)
		w.settle(a, src)
		w.t.Logf("%s: replayed %d datagrams from %v", when, n, src.LocalAddr())
	}
	time.Sleep(100 * time.Millisecond) // for any answer to arrive
	if n := w.third.n.Load(); n != 0 {
		w.t.Errorf("%s: %d datagrams sent to the replayer's address", when, n)
	}
	if after := w.snapshot(a); after != before {
		w.t.Errorf("%s: the replay had effects:\n before %+v\n after  %+v", when, before, after)
	}
	if got := w.paths(a); got != pathsBefore {
		w.t.Errorf("%s: paths moved from %v to %v", when, pathsBefore, got)
	}
	if w.t.Failed() {
		w.t.FailNow()
	}
}

// paths returns b's path to a and a's path to b (zero when unknown).
func (w *replayWorld) paths(a *Mesh) [2]pathAddr {
	var out [2]pathAddr
	if p := w.b.lookup(a.Hashname()); p != nil {
		out[0] = p.path()
	}
	if p := a.lookup(w.b.Hashname()); p != nil {
		out[1] = p.path()
	}
	return out
}

// liveOpts are mesh options without keepalives of their own, so that
// every handshake sent is one the test caused.
func liveOpts() MeshOptions {
	opts := fastOpts()
	opts.Keepalive, opts.LinkTimeout = time.Hour, 3*time.Hour
	return opts
}

// session links a to b, and records a live stream, a finished one and a
// keepalive exchange; the live stream is returned.
func (w *replayWorld) session(a *Mesh) *Stream {
	w.t.Helper()
	w.link(a)
	live, err := a.OpenStream(w.ctx, w.b.Hashname(), nil)
	if err != nil {
		w.t.Fatal(err)
	}
	w.roundTrip(live, "one")
	w.fetch(a)
	pa := a.lookup(w.b.Hashname())
	pa.keepalive([]pathAddr{pa.path()})
	waitUntil(w.t, w.ctx, "the keepalive is answered", func() bool {
		return pa.x.At() == w.b.lookup(a.Hashname()).x.At()
	})
	w.roundTrip(live, "two")
	return live
}

// Everything recorded on the wire and replayed during a live session,
// from the peer's own address or from elsewhere, is dropped: paths stay,
// nothing is answered, the live stream goes on, no session starts, no
// handler runs again.
func TestReplayEverythingLive(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	w := newReplayWorld(t, ctx, liveOpts())
	live := w.session(w.a)
	w.replayAll("live session", w.a)
	w.roundTrip(live, "three")
	w.replayAll("live session, again", w.a)
	w.roundTrip(live, "four")
	if err := live.c.Err(); err != nil {
		t.Fatal(err)
	}
}

// After a peer restarted (on another port, linking again through the
// proxy), everything recorded in both its sessions and replayed is
// dropped the same way.
func TestReplayEverythingAfterRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	opts := liveOpts()
	w := newReplayWorld(t, ctx, opts)
	w.session(w.a)
	w.a.Close()
	a2 := newTestMesh(t, "rp-a", opts)
	live := w.session(a2)
	w.replayAll("after a restarted", a2)
	w.roundTrip(live, "three")
	w.fetch(a2)
	if got := w.runs.Load(); got != 5 {
		t.Fatalf("handler ran %d times, want 5", got)
	}
}

// Everything recorded on the wire during a session that ended (the link
// was let go, the serving side forgot the peer) and replayed changes
// nothing: no link comes up, nothing is answered, no handler runs; the
// next real request links again.
func TestReplayEverythingAfterSessionEnded(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	opts := fastOpts()
	opts.Keepalive, opts.LinkTimeout, opts.IdleTimeout = 100*time.Millisecond, 600*time.Millisecond, 200*time.Millisecond
	w := newReplayWorld(t, ctx, opts)
	w.link(w.a)
	for range 3 {
		w.fetch(w.a)
	}
	waitUntil(t, ctx, "the session ends and b forgets a", func() bool {
		return !w.a.Up(w.b.Hashname()) && w.b.lookup(w.a.Hashname()) == nil
	})
	w.replayAll("after the session ended", w.a)
	if w.b.lookup(w.a.Hashname()) != nil || w.a.Up(w.b.Hashname()) {
		t.Fatal("the replay brought a link up")
	}
	// The next request links again (a's handshake resumes with a new at).
	w.fetch(w.a)
	if got := w.runs.Load(); got != 4 {
		t.Fatalf("handler ran %d times, want 4", got)
	}
}
