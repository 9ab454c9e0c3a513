package xmpppipe

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/internal/xmpp"
	"github.com/git-remote-daemon/git-remote-daemon/internal/xmpptest"
	"github.com/git-remote-daemon/git-remote-daemon/telehash"
)

func logger() *slog.Logger {
	if os.Getenv("XMPPPIPE_DEBUG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return nil
}

func newMesh(t testing.TB, allow func(telehash.Hashname) bool) *telehash.Mesh {
	t.Helper()
	id, err := telehash.GenerateIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	m, err := telehash.NewMesh(context.Background(), id, telehash.MeshOptions{
		Allow: allow, Logger: logger(), HandshakeTimeout: 3 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func server(t testing.TB) *xmpptest.Server {
	srv := xmpptest.Start(t)
	for _, u := range []string{"alice", "bob"} {
		if err := srv.Register(u, "pw-"+u); err != nil {
			t.Fatal(err)
		}
	}
	return srv
}

func bridge(t testing.TB, srv *xmpptest.Server, user string, m *telehash.Mesh, pins ...Pin) *Bridge {
	return bridgeOpts(t, srv, user, m, false, pins...)
}

func bridgeOpts(t testing.TB, srv *xmpptest.Server, user string, m *telehash.Mesh, noBS bool, pins ...Pin) *Bridge {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := New(ctx, Config{
		Session: xmpp.Config{JID: srv.JID(user), Password: "pw-" + user, Server: srv.Addr(),
			TLS: xmpp.StartTLS, CAFile: srv.CAFile},
		Mesh: m, Pins: pins, Logger: logger(), NoBytestreams: noBS,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func waitOnline(t testing.TB, b *Bridge, hn telehash.Hashname) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for b.Online()[hn] == "" {
		if time.Now().After(deadline) {
			t.Fatalf("node %s never online", hn[:8])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// pair links mesh a (alice) to mesh b (bob) with XMPP as the only path:
// messages only, or a SOCKS5 bytestream through the proxy too.
func pair(t testing.TB, bytestreams bool) (a, b *telehash.Mesh) {
	a, b, _, _ = pairServer(t, bytestreams)
	return a, b
}

func pairServer(t testing.TB, bytestreams bool) (a, b *telehash.Mesh, srv *xmpptest.Server, ba *Bridge) {
	srv = server(t)
	var ma, mb *telehash.Mesh
	ma = newMesh(t, nil)
	mb = newMesh(t, func(h telehash.Hashname) bool { return h == ma.Hashname() })
	ba = bridgeOpts(t, srv, "alice", ma, !bytestreams, Pin{JID: srv.JID("bob"), Hashname: mb.Hashname()})
	bb := bridgeOpts(t, srv, "bob", mb, !bytestreams, Pin{JID: srv.JID("alice"), Hashname: ma.Hashname()})
	waitOnline(t, ba, mb.Hashname())
	waitOnline(t, bb, ma.Hashname())
	if bytestreams {
		deadline := time.Now().Add(10 * time.Second)
		for {
			pa, pb := ba.Pipe(ba.Online()[mb.Hashname()]), bb.Pipe(bb.Online()[ma.Hashname()])
			if pa != nil && pb != nil && pa.Bytestream() && pb.Bytestream() {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("no bytestream between the nodes")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Keys only: no UDP path, the pipe is the only way.
	if _, err := ma.Link(ctx, telehash.LinkInfo{Keys: mb.LinkInfo().Keys}); err != nil {
		t.Fatal(err)
	}
	return ma, mb, srv, ba
}

// streamBothWays sends n bytes from a to b on a stream, then n back, and
// returns the time each direction took.
func streamBothWays(t testing.TB, a, b *telehash.Mesh, n int) (up, down time.Duration) {
	t.Helper()
	payload := make([]byte, n)
	rand.Read(payload)
	sum := sha256.Sum256(payload)
	errc := make(chan error, 1)
	b.Handle(telehash.StreamType, func(c *telehash.Channel) {
		s, err := telehash.NewStream(context.Background(), c)
		if err != nil {
			errc <- err
			return
		}
		h := sha256.New()
		if _, err := io.Copy(h, s); err != nil {
			errc <- fmt.Errorf("b read: %w", err)
			return
		}
		if !bytes.Equal(h.Sum(nil), sum[:]) {
			errc <- errors.New("b: payload differs")
			return
		}
		if _, err := s.Write(payload); err != nil {
			errc <- fmt.Errorf("b write: %w", err)
			return
		}
		errc <- s.CloseWrite()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	s, err := a.OpenStream(ctx, b.Hashname(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	if _, err := s.Write(payload); err != nil {
		t.Fatalf("a write: %v", err)
	}
	if err := s.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	first := make([]byte, 1)
	if _, err := io.ReadFull(s, first); err != nil {
		t.Fatalf("a read: %v", err)
	}
	up = time.Since(start)
	mid := time.Now()
	h.Write(first)
	if _, err := io.Copy(h, s); err != nil {
		t.Fatalf("a read: %v", err)
	}
	down = time.Since(mid)
	if !bytes.Equal(h.Sum(nil), sum[:]) {
		t.Fatal("a: payload differs")
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	return up, down
}

func mbps(n int, d time.Duration) float64 { return float64(n) / d.Seconds() / 1e6 }

func TestIntegrationStreamOverXMPP(t *testing.T) {
	a, b := pair(t, false)
	n := 10 << 20
	if raceEnabled {
		n = 2 << 20
	}
	up, down := streamBothWays(t, a, b, n)
	t.Logf("%d MiB over telehash over XMPP messages (Prosody): a->b %.2f MB/s, b->a %.2f MB/s", n>>20, mbps(n, up), mbps(n, down))
	if s := a.Stats(); s.Sent == 0 {
		t.Fatal("nothing sent")
	}
}

func TestIntegrationStreamOverBytestream(t *testing.T) {
	a, b := pair(t, true)
	const n = 10 << 20
	up, down := streamBothWays(t, a, b, n)
	t.Logf("10 MiB over telehash over a SOCKS5 bytestream (Prosody proxy65): a->b %.2f MB/s, b->a %.2f MB/s", mbps(n, up), mbps(n, down))
}

// TestIntegrationServerRestart: the server restarts under a linked pair;
// the sessions reconnect, the nodes' new JIDs become the pipes, and the
// link carries streams again.
func TestIntegrationServerRestart(t *testing.T) {
	for _, bs := range []bool{false, true} {
		t.Run(fmt.Sprintf("bytestreams=%v", bs), func(t *testing.T) {
			a, b, srv, ba := pairServer(t, bs)
			streamBothWays(t, a, b, 64<<10)
			old := ba.Online()[b.Hashname()]
			srv.Stop()
			if err := srv.Restart(); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(15 * time.Second)
			for j := ba.Online()[b.Hashname()]; j == "" || j == old; j = ba.Online()[b.Hashname()] {
				if time.Now().After(deadline) {
					t.Fatal("peer node not back after the restart")
				}
				time.Sleep(20 * time.Millisecond)
			}
			streamBothWays(t, a, b, 256<<10)
		})
	}
}

// TestIntegrationWrongPinRefused: bob's node presents a hashname that is
// not the one pinned for bob: alice offers it no pipe and cannot link.
func TestIntegrationWrongPinRefused(t *testing.T) {
	srv := server(t)
	ma := newMesh(t, nil)
	mb := newMesh(t, func(h telehash.Hashname) bool { return h == ma.Hashname() })
	other := newMesh(t, nil)
	ba := bridge(t, srv, "alice", ma, Pin{JID: srv.JID("bob"), Hashname: other.Hashname()})
	bridge(t, srv, "bob", mb, Pin{JID: srv.JID("alice"), Hashname: ma.Hashname()})
	time.Sleep(time.Second) // presence exchanged (subscription ~300 ms)
	if len(ba.Online()) != 0 {
		t.Fatalf("refused node online: %v", ba.Online())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// No pipe was offered: Link finds no path (or times out).
	if _, err := ma.Link(ctx, telehash.LinkInfo{Keys: mb.LinkInfo().Keys}); err == nil {
		t.Fatal("linked to a node whose hashname is not pinned")
	}
	if mb.Up(ma.Hashname()) || ma.Up(mb.Hashname()) {
		t.Fatal("link up to an unpinned node")
	}
}

// BenchmarkXMPPStream streams 10 MiB each way between two meshes whose
// only path is a Prosody on loopback.
func BenchmarkXMPPStream(b *testing.B) {
	for _, bs := range []bool{false, true} {
		name := "messages"
		if bs {
			name = "bytestream"
		}
		b.Run(name, func(b *testing.B) {
			a, m := pair(b, bs)
			const n = 10 << 20
			b.SetBytes(2 * n)
			for range b.N {
				up, down := streamBothWays(b, a, m, n)
				b.ReportMetric(mbps(n, up), "up-MB/s")
				b.ReportMetric(mbps(n, down), "down-MB/s")
			}
		})
	}
}
