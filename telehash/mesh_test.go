package telehash

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

// fastOpts are mesh options with short timers for tests.
func fastOpts() MeshOptions {
	return MeshOptions{
		Keepalive:        200 * time.Millisecond,
		LinkTimeout:      1500 * time.Millisecond,
		HandshakeTimeout: 5 * time.Second,
		ChannelTimeout:   3 * time.Second,
	}
}

func allowAll(Hashname) bool { return true }

// newTestMesh starts a mesh on 127.0.0.1 closed at the end of the test.
func newTestMesh(t testing.TB, seed string, opts MeshOptions) *Mesh {
	t.Helper()
	if opts.Listen == "" {
		opts.Listen = "127.0.0.1:0"
	}
	if opts.Logger == nil && os.Getenv("TELEHASH_DEBUG") != "" {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("mesh", seed)
	}
	m, err := NewMesh(context.Background(), mustIdentity(t, seed), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// linkMeshes links a to b (b must allow a) and waits until both are up.
func linkMeshes(t testing.TB, a, b *Mesh) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hn, err := a.Link(ctx, b.LinkInfo())
	if err != nil {
		t.Fatal(err)
	}
	if hn != b.Hashname() {
		t.Fatalf("linked %s, want %s", hn, b.Hashname())
	}
	for !b.Up(a.Hashname()) {
		if ctx.Err() != nil {
			t.Fatal("b never saw the link up")
		}
		time.Sleep(time.Millisecond)
	}
}

// testData returns n deterministic pseudo-random bytes.
func testData(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// exchangeStreams sends out over s in chunks while reading everything s
// receives; it returns the received bytes' digest and count.
func exchangeStreams(t testing.TB, s *Stream, out []byte) ([32]byte, int, error) {
	var wg sync.WaitGroup
	var werr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for off := 0; off < len(out); off += 64 << 10 {
			if _, err := s.Write(out[off:min(off+64<<10, len(out))]); err != nil {
				werr = err
				return
			}
		}
		werr = s.CloseWrite()
	}()
	h := sha256.New()
	n, rerr := io.Copy(h, s)
	wg.Wait()
	var sum [32]byte
	h.Sum(sum[:0])
	if rerr == nil {
		rerr = werr
	}
	return sum, int(n), rerr
}

// runStreamPair moves size bytes each way between a and b over a stream
// and checks the digests; it returns the elapsed time.
func runStreamPair(t testing.TB, a, b *Mesh, size int) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dataA, dataB := testData(size, 1), testData(size, 2)
	sumA, sumB := sha256.Sum256(dataA), sha256.Sum256(dataB)
	type result struct {
		sum [32]byte
		n   int
		err error
	}
	bres := make(chan result, 1)
	b.Handle(StreamType, func(c *Channel) {
		s, _ := NewStream(ctx, c)
		sum, n, err := exchangeStreams(t, s, dataB)
		if err == nil {
			err = s.Close()
		}
		bres <- result{sum, n, err}
	})
	start := time.Now()
	s, err := a.OpenStream(ctx, b.Hashname(), map[string]string{"test": "pair"})
	if err != nil {
		t.Fatal(err)
	}
	sum, n, err := exchangeStreams(t, s, dataA)
	if err != nil {
		dumpChannels(t, "a", a)
		dumpChannels(t, "b", b)
		t.Fatalf("a: %v (read %d)", err, n)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("a close: %v", err)
	}
	elapsed := time.Since(start)
	if n != size || sum != sumB {
		t.Fatalf("a received %d bytes, digest mismatch %v", n, sum != sumB)
	}
	select {
	case r := <-bres:
		if r.err != nil || r.n != size || r.sum != sumA {
			t.Fatalf("b: %v, %d bytes, digest ok %v", r.err, r.n, r.sum == sumA)
		}
	case <-ctx.Done():
		t.Fatal("b did not finish")
	}
	return elapsed
}

func TestMeshStreamBothWays(t *testing.T) {
	a := newTestMesh(t, "stream-a", fastOpts())
	bo := fastOpts()
	bo.Allow = allowAll
	b := newTestMesh(t, "stream-b", bo)
	linkMeshes(t, a, b)
	size := 32 << 20
	if testing.Short() || raceEnabled {
		size = 4 << 20
	}
	d := runStreamPair(t, a, b, size)
	mb := float64(size) / (1 << 20)
	t.Logf("%.0f MiB each way in %v: %.1f MB/s per direction, %.1f MB/s total; a %+v; b %+v",
		mb, d.Round(time.Millisecond), float64(size)/1e6/d.Seconds(), 2*float64(size)/1e6/d.Seconds(),
		a.Stats(), b.Stats())
}

func TestMeshChannelUnreliableAndErrors(t *testing.T) {
	a := newTestMesh(t, "unrel-a", fastOpts())
	bo := fastOpts()
	bo.Allow = allowAll
	b := newTestMesh(t, "unrel-b", bo)
	linkMeshes(t, a, b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := make(chan string, 4)
	b.Handle("ping", func(c *Channel) {
		got <- string(c.OpenPacket().Body)
		p, err := c.Receive(ctx)
		if err != nil {
			got <- err.Error()
			return
		}
		got <- string(p.Body)
		c.Send(ctx, &ChannelPacket{Body: []byte("pong"), End: true})
	})
	c, err := a.OpenChannel(ctx, b.Hashname(), "ping", false, &ChannelPacket{Body: []byte("open")})
	if err != nil {
		t.Fatal(err)
	}
	if s := <-got; s != "open" {
		t.Fatalf("open body %q", s)
	}
	if err := c.Send(ctx, &ChannelPacket{Body: []byte("hello")}); err != nil {
		t.Fatal(err)
	}
	if s := <-got; s != "hello" {
		t.Fatalf("got %q", s)
	}
	p, err := c.Receive(ctx)
	if err != nil || string(p.Body) != "pong" || !p.End {
		t.Fatalf("reply %v %v", p, err)
	}
	if _, err := c.Receive(ctx); err != io.EOF {
		t.Fatalf("after end: %v", err)
	}
	// an unhandled type is refused with err, as telehash-js does
	c2, err := a.OpenChannel(ctx, b.Hashname(), "nope", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	var ce *ChannelError
	if _, err := c2.Receive(ctx); !errors.As(err, &ce) || ce.Msg != "unknown type" {
		t.Fatalf("unknown type: %v", err)
	}
	// Abort reaches the peer as err
	b.Handle("abort", func(c *Channel) { c.Abort("go away") })
	c3, err := a.OpenChannel(ctx, b.Hashname(), "abort", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c3.Receive(ctx); !errors.As(err, &ce) || ce.Msg != "go away" {
		t.Fatalf("abort: %v", err)
	}
	// oversized packets are refused
	if err := c.Send(ctx, &ChannelPacket{Body: make([]byte, MaxDatagramSize)}); !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrChannelClosed) {
		t.Fatalf("oversized: %v", err)
	}
}

// rawUDP returns a UDP socket on 127.0.0.1.
func rawUDP(t testing.TB) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestMeshUnauthorizedGetsNothing(t *testing.T) {
	bo := fastOpts()
	bo.Allow = func(Hashname) bool { return false }
	b := newTestMesh(t, "auth-b", bo)
	id := mustIdentity(t, "auth-intruder")
	key, _ := Base32Decode(b.LinkInfo().Keys["3a"])
	x, err := NewExchange(nil, id, key)
	if err != nil {
		t.Fatal(err)
	}
	conn := rawUDP(t)
	hs, _ := x.Handshake()
	to := net.UDPAddrFromAddrPort(b.Addr())
	for i := 0; i < 3; i++ {
		c, _ := Cloak(newDetRand("c"), hs, 1)
		conn.WriteToUDP(c, to)
		conn.WriteToUDP(hs, to) // uncloaked too
	}
	conn.SetReadDeadline(time.Now().Add(700 * time.Millisecond))
	buf := make([]byte, 2048)
	if n, _, err := conn.ReadFromUDP(buf); err == nil {
		t.Fatalf("unauthorized peer got a %d byte reply", n)
	}
	if s := b.Stats(); s.DropUnauthorized != 6 || s.Sent != 0 {
		t.Fatalf("stats %+v", s)
	}
	// a Link from a mesh that b does not allow fails the same way
	a := newTestMesh(t, "auth-a", fastOpts())
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	if _, err := a.Link(ctx, b.LinkInfo()); err == nil {
		t.Fatal("link to a refusing mesh succeeded")
	}
	if s := b.Stats(); s.Sent != 0 {
		t.Fatalf("b sent %d packets", s.Sent)
	}
}

func TestMeshDropsGarbage(t *testing.T) {
	bo := fastOpts()
	bo.Allow = allowAll
	b := newTestMesh(t, "garbage-b", bo)
	a := newTestMesh(t, "garbage-a", fastOpts())
	linkMeshes(t, a, b)
	conn := rawUDP(t)
	to := net.UDPAddrFromAddrPort(b.Addr())
	before := b.Stats()
	r := newDetRand("garbage")
	tok := a.lookup(b.Hashname()).x.remoteToken // b's real token
	var sent int
	send := func(p []byte) { conn.WriteToUDP(p, to); sent++ }
	for i := 0; i < 200; i++ {
		n := 1 + i*7%1500
		p := make([]byte, n)
		r.Read(p)
		send(p)
	}
	send(make([]byte, 4000))                              // oversized
	send([]byte{0, 0})                                    // empty channel packet
	send(append([]byte{0, 1, 0x3a}, make([]byte, 90)...)) // bad handshake
	fake := append([]byte{0, 0}, tok[:]...)
	fake = append(fake, make([]byte, 100)...)
	send(fake) // right token, bad ciphertext
	c, _ := Cloak(r, fake, 3)
	send(c)
	dropped := func(s Stats) uint64 {
		return s.DropMalformed + s.DropUnknownToken + s.DropDecrypt + s.DropChannel + s.DropHandshake -
			(before.DropMalformed + before.DropUnknownToken + before.DropDecrypt + before.DropChannel + before.DropHandshake)
	}
	// Wait for the drops too: a's own packets (its path request after the
	// link came up) also count as received, so Received alone can reach
	// sent while garbage is still in flight.
	deadline := time.Now().Add(3 * time.Second)
	for s := b.Stats(); (s.Received-before.Received < uint64(sent) || dropped(s) < uint64(sent) || b.hsPending.Load() > 0) &&
		time.Now().Before(deadline); s = b.Stats() {
		time.Sleep(5 * time.Millisecond)
	}
	s := b.Stats()
	drops := dropped(s)
	if s.Received-before.Received < uint64(sent) || drops < uint64(sent) {
		t.Fatalf("sent %d, received %d, dropped %d: %+v", sent, s.Received-before.Received, drops, s)
	}
	if s.DropDecrypt-before.DropDecrypt < 2 {
		t.Fatalf("token-matching garbage not counted as decrypt failure: %+v", s)
	}
	// the link still works
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	runStreamPair(t, a, b, 64<<10)
	_ = ctx
}

// dumpChannels logs the state of every channel of m (for debugging).
func dumpChannels(t testing.TB, name string, m *Mesh) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range m.peers {
		p.mu.Lock()
		for id, c := range p.chans {
			c.mu.Lock()
			s, r := &c.snd, &c.rcv
			var q0 string
			if len(s.q) > 0 {
				q0 = fmt.Sprintf("q0 seq %d sent %v ago resends %d", s.q[0].h.seq, time.Since(s.q[0].sentAt), s.q[0].resends)
			}
			t.Logf("%s: c %d closed %v err %v endSent %v rcvEnded %v | snd next %d acked %d q %d cwnd %.1f win %d rto %v armed %v probe %v %s | rcv inDone %d nbuf %d maxSeen %d unread %d lastEdge %d unacked %d",
				name, id, c.closed, c.err, c.endSent, c.rcvEnded, s.next, s.acked, len(s.q), s.cwnd, s.peerWin, s.rto, s.armed, s.probe, q0,
				r.inDone, r.nbuf, r.maxSeen, r.unread(), r.lastEdge, r.unacked)
			c.mu.Unlock()
		}
		p.mu.Unlock()
	}
}
