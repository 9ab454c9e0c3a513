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

// recordingProxy relays UDP between one client and a server, and records
// the client's channel datagrams while recording is on, to replay them.
type recordingProxy struct {
	conn      *net.UDPConn
	server    netip.AddrPort
	recording atomic.Bool

	mu       sync.Mutex
	client   netip.AddrPort
	recorded [][]byte
}

func newRecordingProxy(t testing.TB, server netip.AddrPort) *recordingProxy {
	p := &recordingProxy{conn: rawUDP(t), server: server}
	go func() {
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
				if p.recording.Load() && isChannelDatagram(pkt) {
					p.recorded = append(p.recorded, pkt)
				}
			}
			p.mu.Unlock()
			if to.IsValid() {
				_, _ = p.conn.WriteToUDPAddrPort(pkt, to)
			}
		}
	}()
	return p
}

func (p *recordingProxy) path() Path {
	a := p.conn.LocalAddr().(*net.UDPAddr)
	return Path{Type: "udp4", IP: a.IP.String(), Port: a.Port}
}

// replay sends every recorded datagram to the server again, from the
// client's address as the server knows it, and returns how many.
func (p *recordingProxy) replay(t testing.TB) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pkt := range p.recorded {
		if _, err := p.conn.WriteToUDPAddrPort(pkt, p.server); err != nil {
			t.Fatal(err)
		}
	}
	return len(p.recorded)
}

// A channel open recorded on the wire and replayed within the same
// session, just after the channel closed or after many more channels,
// does not open the channel again: its handler does not run again.
func TestReplayedChannelOpenIgnored(t *testing.T) {
	// Finished channels linger ChannelTimeout to answer retransmissions.
	ao := fastOpts()
	ao.ChannelTimeout, ao.MaxChannels = 2*time.Second, 256
	a := newTestMesh(t, "replay-a", ao)
	bo := ao
	bo.Allow = allowAll
	b := newTestMesh(t, "replay-b", bo)
	proxy := newRecordingProxy(t, b.Addr())
	info := b.LinkInfo()
	info.Paths = []Path{proxy.path()}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := a.Link(ctx, info); err != nil {
		t.Fatal(err)
	}
	// The path channels of the link's start (path_channel.go) are done
	// and counted before anything is recorded.
	waitUntil(t, ctx, "the path requests are answered", func() bool {
		_, ab := a.SeenAs(b.Hashname())
		_, ba := b.SeenAs(a.Hashname())
		return ab && ba
	})
	base := b.Stats().ChannelsAccepted
	var runs atomic.Int64
	b.Handle(StreamType, func(c *Channel) {
		runs.Add(1)
		s, err := NewStream(ctx, c)
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, s)
		s.Close()
	})
	// fetch opens a stream, sends a request and closes.
	fetch := func() {
		t.Helper()
		s, err := a.OpenStream(ctx, b.Hashname(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Write([]byte("fetch")); err != nil {
			t.Fatal(err)
		}
		if err := s.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadAll(s); err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	forgotten := func() {
		t.Helper()
		waitUntil(t, ctx, "b forgets the channels", func() bool {
			p := b.lookup(a.Hashname())
			p.mu.Lock()
			defer p.mu.Unlock()
			return len(p.chans) == 0
		})
	}
	// replayed sends the recording again and waits until b handled it.
	replayed := func(when string, want int64) {
		t.Helper()
		before := b.Stats()
		n := proxy.replay(t)
		waitUntil(t, ctx, "b receives the replay", func() bool { return b.Stats().Received >= before.Received+uint64(n) })
		// A second datagram (garbage) marks that b handled the replay.
		if _, err := proxy.conn.WriteToUDPAddrPort([]byte{0}, b.Addr()); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, ctx, "b handles the replay", func() bool { return b.Stats().DropMalformed > before.DropMalformed })
		if got := b.Stats().ChannelsAccepted - base; got != uint64(want) || runs.Load() != want {
			t.Fatalf("%s: %d datagrams replayed: %d channels accepted, handler ran %d times; want %d",
				when, n, got, runs.Load(), want)
		}
	}
	proxy.recording.Store(true)
	fetch()
	proxy.recording.Store(false)
	if runs.Load() != 1 {
		t.Fatalf("handler ran %d times", runs.Load())
	}
	replayed("just after the channel closed", 1)
	forgotten()
	replayed("once b forgot the channel", 1)
	for range 80 {
		fetch()
	}
	forgotten()
	replayed("after 80 more channels", 81)
	// The session still works.
	fetch()
	if runs.Load() != 82 {
		t.Fatalf("handler ran %d times, want 82", runs.Load())
	}
}

func TestIDWindow(t *testing.T) {
	var w idWindow
	use := func(id uint32) bool {
		if !w.fresh(id) {
			return false
		}
		w.accept(id)
		return true
	}
	for _, step := range []struct {
		id uint32
		ok bool
	}{
		{1, true}, {1, false}, {5, true}, {3, true}, {3, false}, {5, false}, {7, true},
		{201, true}, {201 - 2*63, true}, {201 - 2*64, false}, {199, true}, {199, false},
		{1001, true}, {201, false}, {1003, true}, {1001, false},
	} {
		if got := use(step.id); got != step.ok {
			t.Fatalf("id %d: accepted %v, want %v", step.id, got, step.ok)
		}
	}
	var even idWindow
	for _, id := range []uint32{2, 4, 8, 6} {
		if !even.fresh(id) {
			t.Fatalf("even id %d refused", id)
		}
		even.accept(id)
	}
	if even.fresh(4) || even.fresh(2) {
		t.Fatal("even id accepted twice")
	}
}
