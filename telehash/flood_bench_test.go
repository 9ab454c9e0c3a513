package telehash

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Flood bounds: the flood runs only while requests are measured, on
// loopback, and never longer or more than this.
const (
	floodMaxDatagrams = 50_000_000
	floodMaxTime      = 2 * time.Minute
)

// flood sends handshakes of unknown keys to a mesh as fast as it can,
// from conns, until stopped or bounded.
type flood struct {
	stop  chan struct{}
	wg    sync.WaitGroup
	sent  atomic.Uint64
	start time.Time
	end   time.Time
}

func startFlood(to netip.AddrPort, conns []*net.UDPConn, pkts [][]byte, senders int) *flood {
	f := &flood{stop: make(chan struct{}), start: time.Now()}
	deadline := f.start.Add(floodMaxTime)
	for i := range senders {
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			for j := i; ; j += senders {
				if j%64 == i%64 {
					select {
					case <-f.stop:
						return
					default:
					}
					if f.sent.Load() >= floodMaxDatagrams || time.Now().After(deadline) {
						return
					}
				}
				if _, err := conns[j%len(conns)].WriteToUDPAddrPort(pkts[j%len(pkts)], to); err == nil {
					f.sent.Add(1)
				}
			}
		}()
	}
	return f
}

// halt stops the flood and returns its rate in datagrams a second.
func (f *flood) halt() float64 {
	close(f.stop)
	f.wg.Wait()
	return float64(f.sent.Load()) / time.Since(f.start).Seconds()
}

// floodSources binds n UDP sockets on 127.0.0.1 to 127.0.0.4.
func floodSources(b *testing.B, n int) []*net.UDPConn {
	out := make([]*net.UDPConn, n)
	for i := range out {
		ip := netip.AddrFrom4([4]byte{127, 0, 0, byte(1 + i%4)})
		c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		out[i] = c
	}
	return out
}

// BenchmarkHandshakeFlood measures the latency of an authorized request
// (open a stream to a linked peer, exchange a small message) with no
// flood, under a flood of handshakes from unknown keys from one source,
// and from 64 sources (ports on 127.0.0.1-4), and reports the ratios
// (target: at most 2). Figures, not pass/fail.
func BenchmarkHandshakeFlood(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Finished channels linger a few seconds: room for all of them.
	opts := MeshOptions{MaxChannels: 1 << 20}
	client := newTestMesh(b, "flood-client", opts)
	opts.Allow = func(h Hashname) bool { return h == client.Hashname() }
	server := newTestMesh(b, "flood-server", opts)
	server.Handle(StreamType, func(c *Channel) {
		s, err := NewStream(ctx, c)
		if err != nil {
			return
		}
		_, _ = io.Copy(s, s)
		s.Close()
	})
	linkMeshes(b, client, server)
	release, err := client.Keep(server.Hashname())
	if err != nil {
		b.Fatal(err)
	}
	defer release()
	pkts := strangerHandshakes(b, server, 256, "flood")
	msg := []byte("want 0123456789abcdef")
	request := func() time.Duration {
		start := time.Now()
		s, err := client.OpenStream(ctx, server.Hashname(), nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Write(msg); err != nil {
			b.Fatal(err)
		}
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(s, buf); err != nil {
			b.Fatal(err)
		}
		d := time.Since(start)
		s.Close()
		return d
	}
	measure := func(name string, sources []*net.UDPConn) (median time.Duration) {
		var f *flood
		phase := time.Now()
		if len(sources) > 0 {
			f = startFlood(server.Addr(), sources, pkts, 2)
		}
		before, cbefore := server.Stats(), client.Stats()
		for range 5 { // warm up, let the flood fill the queues
			request()
		}
		ds := make([]time.Duration, b.N)
		for i := range ds {
			ds[i] = request()
		}
		rate := 0.0
		if f != nil {
			rate = f.halt()
		}
		elapsed := time.Since(phase)
		s := server.Stats()
		slices.Sort(ds)
		median = ds[len(ds)/2]
		var sum time.Duration
		for _, d := range ds {
			sum += d
		}
		r := func(d time.Duration) time.Duration { return d.Round(time.Microsecond) }
		logf := b.Logf
		if b.N == 1 { // the calibration run
			logf = func(string, ...any) {}
		}
		logf("%-12s median %8v  mean %8v  p99 %8v  flood sent %6.0f/s, read %6.0f/s  opened %d  rate-limited %d  queue-full %d  retransmits %d",
			name, r(median), r(sum/time.Duration(len(ds))), r(ds[len(ds)*99/100]), rate,
			float64(s.Received-before.Received)/elapsed.Seconds(),
			s.HandshakesOpened-before.HandshakesOpened, s.DropRateLimited-before.DropRateLimited,
			s.DropOverload-before.DropOverload, s.Retransmits-before.Retransmits+client.Stats().Retransmits-cbefore.Retransmits)
		b.ReportMetric(float64(median.Microseconds()), name+"-us")
		if f != nil {
			b.ReportMetric(rate, name+"-pps")
		}
		return median
	}
	b.ResetTimer()
	none := measure("none", nil)
	one := measure("one-source", floodSources(b, 1))
	many := measure("many-sources", floodSources(b, 64))
	b.StopTimer()
	xOne, xMany := float64(one)/float64(none), float64(many)/float64(none)
	b.ReportMetric(xOne, "x-one")
	b.ReportMetric(xMany, "x-many")
	if b.N > 1 {
		b.Logf("%s", fmt.Sprintf("request latency under a handshake flood (medians): x%.2f (one source), x%.2f (64 sources) of %v without (target <= 2)",
			xOne, xMany, none.Round(time.Microsecond)))
	}
}
