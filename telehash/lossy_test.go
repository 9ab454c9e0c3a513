package telehash

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// lossyProxy relays UDP between one client and a server, dropping and
// reordering packets.
type lossyProxy struct {
	conn    *net.UDPConn
	server  netip.AddrPort
	drop    float64 // probability of dropping a packet
	reorder float64 // probability of holding a packet back behind the next
	dropped atomic.Int64
	held    atomic.Int64
	// blackhole drops every channel packet (handshakes still pass)
	blackhole atomic.Bool

	mu     sync.Mutex
	rnd    *rand.Rand
	client netip.AddrPort
	hold   map[netip.AddrPort][]byte // held packet per destination
}

func newLossyProxy(t testing.TB, server netip.AddrPort, drop, reorder float64) *lossyProxy {
	t.Helper()
	p := &lossyProxy{conn: rawUDP(t), server: server, drop: drop, reorder: reorder,
		rnd: rand.New(rand.NewPCG(1, 2)), hold: make(map[netip.AddrPort][]byte)}
	p.conn.SetReadBuffer(4 << 20)
	p.conn.SetWriteBuffer(4 << 20)
	go p.run()
	return p
}

// path is the proxy's address, to give the client as the server's path.
func (p *lossyProxy) path() Path {
	a := p.conn.LocalAddr().(*net.UDPAddr)
	return Path{Type: "udp4", IP: a.IP.String(), Port: a.Port}
}

func (p *lossyProxy) run() {
	buf := make([]byte, 65536)
	for {
		n, from, err := p.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		pkt := append([]byte(nil), buf[:n]...)
		p.mu.Lock()
		to := p.server
		if from == p.server {
			to = p.client
		} else {
			p.client = from
		}
		r := p.rnd.Float64()
		var send [][]byte
		switch {
		case !to.IsValid():
		case p.blackhole.Load() && isChannelDatagram(pkt):
		case r < p.drop:
			p.dropped.Add(1)
		case r < p.drop+p.reorder && p.hold[to] == nil:
			p.held.Add(1)
			p.hold[to] = pkt
			dst := to
			time.AfterFunc(20*time.Millisecond, func() { p.release(dst, pkt) })
		default:
			send = append(send, pkt)
			if h := p.hold[to]; h != nil {
				send = append(send, h) // now behind a later packet
				delete(p.hold, to)
			}
		}
		p.mu.Unlock()
		for _, s := range send {
			p.conn.WriteToUDPAddrPort(s, to)
		}
	}
}

// isChannelDatagram reports whether a datagram is a channel packet.
func isChannelDatagram(b []byte) bool {
	pkt, _, err := uncloak(b)
	return err == nil && len(pkt) >= 2 && pkt[0] == 0 && pkt[1] == 0
}

// release sends a held packet that no later packet overtook.
func (p *lossyProxy) release(to netip.AddrPort, pkt []byte) {
	p.mu.Lock()
	h := p.hold[to]
	if h == nil || &h[0] != &pkt[0] {
		p.mu.Unlock()
		return
	}
	delete(p.hold, to)
	p.mu.Unlock()
	p.conn.WriteToUDPAddrPort(pkt, to)
}

func TestMeshLossyReordering(t *testing.T) {
	a := newTestMesh(t, "lossy-a", fastOpts())
	bo := fastOpts()
	bo.Allow = allowAll
	b := newTestMesh(t, "lossy-b", bo)
	proxy := newLossyProxy(t, b.Addr(), 0.05, 0.03)
	info := b.LinkInfo()
	info.Paths = []Path{proxy.path()}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := a.Link(ctx, info); err != nil {
		t.Fatal(err)
	}
	size := 16 << 20
	if testing.Short() || raceEnabled {
		size = 2 << 20
	}
	d := runStreamPair(t, a, b, size)
	sa, sb := a.Stats(), b.Stats()
	t.Logf("%d MiB each way through 5%% loss and 3%% reordering in %v (%.1f MB/s per direction); "+
		"proxy dropped %d, reordered %d; retransmits a %d b %d, timeouts a %d b %d, duplicates a %d b %d",
		size>>20, d.Round(time.Millisecond), float64(size)/1e6/d.Seconds(), proxy.dropped.Load(), proxy.held.Load(),
		sa.Retransmits, sb.Retransmits, sa.Timeouts, sb.Timeouts, sa.Duplicates, sb.Duplicates)
	if proxy.dropped.Load() == 0 || proxy.held.Load() == 0 {
		t.Fatal("the proxy neither dropped nor reordered")
	}
}

// TestMeshPeerDies checks that a peer vanishing mid-transfer fails the
// other side's stream Read and Write within a bounded time.
func TestMeshPeerDies(t *testing.T) {
	ao := fastOpts()
	downs := make(chan Hashname, 1)
	ao.OnLink = func(h Hashname, up bool) {
		if !up {
			downs <- h
		}
	}
	a := newTestMesh(t, "dies-a", ao)
	bo := fastOpts()
	bo.Allow = allowAll
	b := newTestMesh(t, "dies-b", bo)
	linkMeshes(t, a, b)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	started := make(chan struct{})
	b.Handle(StreamType, func(c *Channel) {
		s, _ := NewStream(ctx, c)
		buf := make([]byte, 1<<20)
		if _, err := s.Read(buf); err == nil {
			close(started)
		}
		// read slowly so that a's writes block on the window, then die
		time.Sleep(50 * time.Millisecond)
		b.Close()
	})
	w, err := a.OpenStream(ctx, b.Hashname(), nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := a.OpenStream(ctx, b.Hashname(), nil) // a stream that only reads
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 2)
	var died time.Time
	go func() {
		data := make([]byte, 64<<10)
		for {
			if _, err := w.Write(data); err != nil {
				errs <- err
				return
			}
		}
	}()
	go func() {
		_, err := r.Read(make([]byte, 10))
		errs <- err
	}()
	select {
	case <-started:
		died = time.Now()
	case <-ctx.Done():
		t.Fatal("transfer never started")
	}
	bound := fastOpts().LinkTimeout + fastOpts().ChannelTimeout
	for i := 0; i < 2; i++ {
		select {
		case err := <-errs:
			if err == nil || (!errors.Is(err, ErrLinkDown) && !errors.Is(err, ErrChannelTimeout)) {
				t.Fatalf("error %v, want link down or channel timeout", err)
			}
			t.Logf("failed after %v: %v", time.Since(died).Round(time.Millisecond), err)
		case <-time.After(bound + 2*time.Second):
			t.Fatalf("stream still blocked %v after the peer died", time.Since(died))
		}
	}
	select {
	case h := <-downs:
		if h != b.Hashname() {
			t.Fatalf("OnLink down for %s", h)
		}
	case <-time.After(bound):
		t.Fatal("no OnLink down event")
	}
	if a.Up(b.Hashname()) {
		t.Fatal("link still up")
	}
}

// TestMeshChannelTimeout checks that a reliable channel whose packets are
// no longer acknowledged fails with ErrChannelTimeout while the link
// itself stays up, and that the error reaches a blocked Write.
func TestMeshChannelTimeout(t *testing.T) {
	a := newTestMesh(t, "timeout-a", fastOpts())
	bo := fastOpts()
	bo.Allow = allowAll
	b := newTestMesh(t, "timeout-b", bo)
	proxy := newLossyProxy(t, b.Addr(), 0, 0)
	info := b.LinkInfo()
	info.Paths = []Path{proxy.path()}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := a.Link(ctx, info); err != nil {
		t.Fatal(err)
	}
	b.Handle(StreamType, func(c *Channel) {
		s, _ := NewStream(ctx, c)
		io.Copy(io.Discard, s)
	})
	s, err := a.OpenStream(ctx, b.Hashname(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write(make([]byte, 100<<10)); err != nil {
		t.Fatal(err)
	}
	proxy.blackhole.Store(true)
	start := time.Now()
	var werr error
	for werr == nil {
		_, werr = s.Write(make([]byte, 64<<10))
	}
	took := time.Since(start)
	if !errors.Is(werr, ErrChannelTimeout) {
		t.Fatalf("write error %v, want channel timeout", werr)
	}
	limit := fastOpts().ChannelTimeout + maxRTO + time.Second
	if took > limit {
		t.Fatalf("timeout after %v, limit %v", took, limit)
	}
	if !a.Up(b.Hashname()) {
		t.Fatal("the link went down too")
	}
	t.Logf("write failed after %v: %v", took.Round(time.Millisecond), werr)
}
