package xmpp

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/internal/xmpptest"
)

// hn returns a well-formed fake hashname for node i.
func hn(i int) string { return strings.Repeat(string(rune('a'+i)), 52) }

// recorder collects a session's callbacks.
type recorder struct {
	mu    sync.Mutex
	peers map[string]Peer
	data  chan datagram
	state chan bool
}

type datagram struct {
	from string
	b    []byte
}

func newRecorder() *recorder {
	return &recorder{peers: map[string]Peer{}, data: make(chan datagram, 100000), state: make(chan bool, 100)}
}

func (r *recorder) hook(c *Config) {
	c.OnDatagram = func(from string, b []byte) { r.data <- datagram{from, b} }
	c.OnPeer = func(p Peer) {
		r.mu.Lock()
		defer r.mu.Unlock()
		if p.Online {
			r.peers[p.JID] = p
		} else {
			delete(r.peers, p.JID)
		}
	}
	c.OnState = func(up bool) { r.state <- up }
}

// waitPeer waits for an online peer node with hashname h.
func (r *recorder) waitPeer(t *testing.T, h string) Peer {
	t.Helper()
	return r.waitPeerT(t, h)
}

func (r *recorder) waitPeerT(t testing.TB, h string) Peer {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		for _, p := range r.peers {
			if p.Node.Hashname == h {
				r.mu.Unlock()
				return p
			}
		}
		r.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("peer node %s not seen", h[:4])
	return Peer{}
}

func (r *recorder) hasPeer(h string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.peers {
		if p.Node.Hashname == h {
			return true
		}
	}
	return false
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return nil
}

// startServer starts Prosody with accounts alice, bob and carol
// (password "pw-<name>").
func startServer(t testing.TB) *xmpptest.Server {
	srv := xmpptest.Start(t)
	for _, u := range []string{"alice", "bob", "carol"} {
		if err := srv.Register(u, "pw-"+u); err != nil {
			t.Fatal(err)
		}
	}
	return srv
}

func config(srv *xmpptest.Server, user string, node int, peers ...string) Config {
	return Config{
		JID: srv.JID(user), Password: "pw-" + user, Server: srv.Addr(), TLS: StartTLS,
		CAFile: srv.CAFile, Node: Node{Hashname: hn(node)}, Peers: peers,
		BackoffMin: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond,
	}
}

func dial(t testing.TB, cfg Config) *Session {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestIntegrationPeersAndDatagrams(t *testing.T) {
	srv := startServer(t)
	ra, rb, ra2 := newRecorder(), newRecorder(), newRecorder()
	ca := config(srv, "alice", 0, srv.JID("bob"))
	ra.hook(&ca)
	cb := config(srv, "bob", 1, srv.JID("alice"))
	rb.hook(&cb)
	a := dial(t, ca)
	b := dial(t, cb)
	// A second device of alice's: the account's resources are peers
	// without any configuration.
	ca2 := config(srv, "alice", 2)
	ra2.hook(&ca2)
	a2 := dial(t, ca2)

	pb := ra.waitPeer(t, hn(1))
	pa := rb.waitPeer(t, hn(0))
	ra.waitPeer(t, hn(2))
	ra2.waitPeer(t, hn(0))
	if pb.JID != b.LocalJID() || pa.JID != a.LocalJID() {
		t.Fatalf("peer JIDs %s %s, sessions %s %s", pb.JID, pa.JID, b.LocalJID(), a.LocalJID())
	}
	if ra2.hasPeer(hn(1)) {
		t.Fatal("alice's second device sees bob without having him configured")
	}

	ctx := context.Background()
	for i, n := range []int{0, 1, 100, 1400, MaxDatagram} {
		msg := make([]byte, n)
		rand.Read(msg)
		if err := a.Send(ctx, pb.JID, msg); err != nil {
			t.Fatal(err)
		}
		if err := b.Send(ctx, pa.JID, msg); err != nil {
			t.Fatal(err)
		}
		for _, r := range []*recorder{rb, ra} {
			select {
			case d := <-r.data:
				if !bytes.Equal(d.b, msg) {
					t.Fatalf("datagram %d: got %d bytes, want %d", i, len(d.b), n)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("datagram %d (%d bytes) not received", i, n)
			}
		}
	}
	if err := a.Send(ctx, pb.JID, make([]byte, MaxDatagram+1)); err == nil {
		t.Fatal("oversized datagram sent")
	}

	// Every reply we wrote had a valid destination (an empty to="" is
	// what mellium writes when a stanza struct is encoded).
	if log := srv.Log(); strings.Contains(log, "invalid destination JID") {
		t.Fatalf("Prosody got stanzas with an invalid destination:\n%s", log)
	}

	// A node that leaves is reported offline.
	a2.Close()
	deadline := time.Now().Add(5 * time.Second)
	for ra.hasPeer(hn(2)) {
		if time.Now().After(deadline) {
			t.Fatal("departed node still online")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestIntegrationStrangerRefused(t *testing.T) {
	srv := startServer(t)
	ra, rc := newRecorder(), newRecorder()
	ca := config(srv, "alice", 0) // no peers configured
	ra.hook(&ca)
	a := dial(t, ca)
	cc := config(srv, "carol", 3, srv.JID("alice"))
	rc.hook(&cc)
	c := dial(t, cc)
	// carol asked for alice's presence and was refused: she never sees
	// alice's node; what she sends to alice's full JID is dropped.
	time.Sleep(500 * time.Millisecond)
	if rc.hasPeer(hn(0)) {
		t.Fatal("stranger sees alice's node")
	}
	if err := c.Send(context.Background(), a.LocalJID(), []byte("hello")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for a.Stats().Dropped == 0 {
		if time.Now().After(deadline) {
			t.Fatal("stranger's datagram not counted as dropped")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case d := <-ra.data:
		t.Fatalf("stranger's datagram delivered: %q", d.b)
	default:
	}
}

func TestIntegrationTLSModes(t *testing.T) {
	srv := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	direct := config(srv, "alice", 0)
	direct.Server, direct.TLS = srv.DirectTLSAddr(), DirectTLS
	s, err := Dial(ctx, direct)
	if err != nil {
		t.Fatalf("direct TLS: %v", err)
	}
	s.Close()

	// Without the test CA the server's certificate is not trusted.
	for _, mode := range []TLSMode{StartTLS, DirectTLS} {
		c := config(srv, "alice", 0)
		c.CAFile = ""
		if mode == DirectTLS {
			c.Server, c.TLS = srv.DirectTLSAddr(), DirectTLS
		}
		if s, err := Dial(ctx, c); err == nil {
			s.Close()
			t.Fatalf("%v: untrusted certificate accepted", mode)
		} else if !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("%v: want a certificate error, got %v", mode, err)
		}
	}

	plain := config(srv, "alice", 0)
	plain.TLS = Plaintext
	if _, err := Dial(ctx, plain); err == nil || !strings.Contains(err.Error(), "plaintext") {
		t.Fatalf("plaintext without AllowPlaintext: %v", err)
	}
	plain.AllowPlaintext = true
	s, err = Dial(ctx, plain)
	if err != nil {
		t.Fatalf("plaintext allowed: %v", err)
	}
	s.Close()

	bad := config(srv, "alice", 0)
	bad.Password = "wrong"
	if _, err := Dial(ctx, bad); err == nil || !strings.Contains(err.Error(), "authentication failed") {
		t.Fatalf("wrong password: %v", err)
	}
}

func TestIntegrationReconnect(t *testing.T) {
	srv := startServer(t)
	ra, rb := newRecorder(), newRecorder()
	ca := config(srv, "alice", 0, srv.JID("bob"))
	ra.hook(&ca)
	cb := config(srv, "bob", 1, srv.JID("alice"))
	rb.hook(&cb)
	a := dial(t, ca)
	dial(t, cb)
	ra.waitPeer(t, hn(1))
	<-ra.state // the first connect

	srv.Stop()
	select {
	case up := <-ra.state:
		if up {
			t.Fatal("reported up after the server stopped")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("disconnect not reported")
	}
	if ra.hasPeer(hn(1)) {
		t.Fatal("peer still online after disconnect")
	}
	if err := a.Send(context.Background(), "bob@localhost/x", []byte("x")); err == nil {
		t.Fatal("send while disconnected succeeded")
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	select {
	case up := <-ra.state:
		if !up {
			t.Fatal("second down")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("reconnect not reported")
	}
	p := ra.waitPeer(t, hn(1))
	if err := a.Send(context.Background(), p.JID, []byte("after")); err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-rb.data:
		if string(d.b) != "after" {
			t.Fatalf("got %q", d.b)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("datagram after reconnect not received")
	}
}

// TestIntegrationNetworkLoss: the server stops answering (frozen, the
// TCP connection still open): the ping notices, the session reports
// down, and reconnects once the server answers again.
func TestIntegrationNetworkLoss(t *testing.T) {
	srv := startServer(t)
	ra := newRecorder()
	ca := config(srv, "alice", 0)
	ca.PingInterval, ca.PingTimeout = 200*time.Millisecond, 300*time.Millisecond
	ra.hook(&ca)
	dial(t, ca)
	<-ra.state
	if err := srv.Pause(); err != nil {
		t.Fatal(err)
	}
	select {
	case up := <-ra.state:
		if up {
			t.Fatal("up while the server is frozen")
		}
	case <-time.After(5 * time.Second):
		srv.Resume()
		t.Fatal("a frozen server went unnoticed")
	}
	if err := srv.Resume(); err != nil {
		t.Fatal(err)
	}
	select {
	case up := <-ra.state:
		if !up {
			t.Fatal("second down")
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no reconnect after the server came back")
	}
}

// BenchmarkXMPPDatagrams sends 1200-byte datagrams (a telehash packet's
// size) from alice to bob through Prosody without acknowledgement and
// reports the rate that arrived, with at most 256 datagrams in flight,
// and how many datagrams a message carried on average.
func BenchmarkXMPPDatagrams(b *testing.B) {
	for _, size := range []int{1200, 4000} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			srv := startServer(b)
			ra, rb := newRecorder(), newRecorder()
			ca := config(srv, "alice", 0, srv.JID("bob"))
			ra.hook(&ca)
			cb := config(srv, "bob", 1, srv.JID("alice"))
			rb.hook(&cb)
			a := dial(b, ca)
			bs := dial(b, cb)
			ra.waitPeerT(b, hn(1))
			benchDatagrams(b, a, bs, rb, size)
		})
	}
}

// benchDatagrams sends 10 MiB of datagrams of size bytes from a to bs,
// whose datagrams rb records, b.N times.
func benchDatagrams(b *testing.B, a, bs *Session, rb *recorder, size int) {
	const total = 10 << 20
	n := total / size
	msg := make([]byte, size)
	b.SetBytes(int64(n * size))
	b.ResetTimer()
	// At most window datagrams in flight: unacknowledged, a flood only
	// measures how long the server's queues get before the sender's
	// write deadline (the pipe above is paced by telehash's own flow
	// control).
	const window = 256
	var got sync.WaitGroup
	for range b.N {
		var recvd atomic.Int64
		got.Add(1)
		go func() {
			defer got.Done()
			for range n {
				<-rb.data
				recvd.Add(1)
			}
		}()
		start := time.Now()
		for i := range n {
			for int64(i)-recvd.Load() >= window {
				time.Sleep(100 * time.Microsecond)
			}
			if err := a.Send(context.Background(), bs.LocalJID(), msg); err != nil {
				b.Fatal(err)
			}
		}
		got.Wait()
		b.ReportMetric(float64(n*size)/time.Since(start).Seconds()/1e6, "MB/s")
		st := a.Stats()
		b.ReportMetric(float64(st.Sent)/float64(st.Messages), "datagrams/msg")
	}
}
