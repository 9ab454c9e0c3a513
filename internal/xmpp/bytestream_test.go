package xmpp

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net"
	"testing"
	"time"
)

// bytestreamPair opens a SOCKS5 bytestream from alice to bob through
// the server's proxy65 (found by disco).
func bytestreamPair(t testing.TB) (ac, bc net.Conn) {
	srv := startServer(t)
	ra, rb := newRecorder(), newRecorder()
	ca := config(srv, "alice", 0, srv.JID("bob"))
	ra.hook(&ca)
	cb := config(srv, "bob", 1, srv.JID("alice"))
	rb.hook(&cb)
	conns := make(chan net.Conn, 1)
	cb.OnBytestream = func(from string, c net.Conn) { conns <- c }
	a := dial(t, ca)
	dial(t, cb)
	pb := ra.waitPeerT(t, hn(1))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ac, err := a.OpenBytestream(ctx, pb.JID)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ac.Close() })
	select {
	case bc = <-conns:
	case <-time.After(5 * time.Second):
		t.Fatal("bob got no bytestream")
	}
	t.Cleanup(func() { bc.Close() })
	return ac, bc
}

// writeNudged writes msg, then a zero byte every 10 ms until done:
// Prosody 0.12.3's proxy65 may hold the last chunk it read while the
// receiver was slow until more bytes come.
func writeNudged(c net.Conn, msg []byte, done <-chan struct{}) {
	c.Write(msg)
	for {
		select {
		case <-done:
			return
		case <-time.After(10 * time.Millisecond):
			c.Write([]byte{0})
		}
	}
}

func TestIntegrationBytestream(t *testing.T) {
	ac, bc := bytestreamPair(t)
	msg := make([]byte, 1<<20)
	rand.Read(msg)
	done := make(chan struct{})
	go writeNudged(ac, msg, done)
	got := make([]byte, len(msg))
	_, err := io.ReadFull(bc, got)
	close(done)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("a->b: %v", err)
	}
	done = make(chan struct{})
	go writeNudged(bc, msg[:1000], done)
	_, err = io.ReadFull(ac, got[:1000])
	close(done)
	if err != nil || !bytes.Equal(got[:1000], msg[:1000]) {
		t.Fatalf("b->a: %v", err)
	}
}

// TestIntegrationBytestreamRefused: a node without OnBytestream, or a
// stranger's offer, gets an error and no connection.
func TestIntegrationBytestreamRefused(t *testing.T) {
	srv := startServer(t)
	ra := newRecorder()
	ca := config(srv, "alice", 0, srv.JID("bob"))
	ra.hook(&ca)
	a := dial(t, ca)
	cb := config(srv, "bob", 1, srv.JID("alice")) // no OnBytestream
	dial(t, cb)
	pb := ra.waitPeerT(t, hn(1))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if c, err := a.OpenBytestream(ctx, pb.JID); err == nil {
		c.Close()
		t.Fatal("bytestream opened to a node that takes none")
	}
}

// BenchmarkXMPPBytestream sends 10 MiB over a SOCKS5 bytestream through
// Prosody's proxy65. Prosody 0.12.3's proxy65 may hold the last 4 KiB
// read while the receiver was slow until more bytes come: the writer
// nudges with a byte every 10 ms until the reader has everything.
func BenchmarkXMPPBytestream(b *testing.B) {
	ac, bc := bytestreamPair(b)
	const n = 10 << 20
	b.SetBytes(n)
	for range b.N {
		start := time.Now()
		done := make(chan struct{})
		go writeNudged(ac, make([]byte, n), done)
		_, err := io.CopyN(io.Discard, bc, n)
		close(done)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(n)/time.Since(start).Seconds()/1e6, "MB/s")
	}
}
