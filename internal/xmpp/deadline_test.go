package xmpp

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// TestIntegrationSustainedDatagrams sends 9,000 datagrams (10 MiB) paced
// by what arrived, and checks every one arrives without a send error.
// BenchmarkXMPPDatagrams, which does the same, failed with "i/o timeout"
// in every run before guardConn; this test did not reproduce that here,
// so it guards sustained delivery, not that cause.
func TestIntegrationSustainedDatagrams(t *testing.T) {
	srv := startServer(t)
	ra, rb := newRecorder(), newRecorder()
	ca := config(srv, "alice", 0, srv.JID("bob"))
	ra.hook(&ca)
	cb := config(srv, "bob", 1, srv.JID("alice"))
	rb.hook(&cb)
	a := dial(t, ca)
	b := dial(t, cb)
	ra.waitPeerT(t, hn(1))
	const n, window = 9000, 256
	var recvd atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range n {
			select {
			case <-rb.data:
				recvd.Add(1)
			case <-time.After(30 * time.Second):
				return
			}
		}
	}()
	msg := make([]byte, 1200)
	for i := range n {
		for int64(i)-recvd.Load() >= window {
			time.Sleep(100 * time.Microsecond)
		}
		err := a.Send(context.Background(), b.LocalJID(), msg)
		if err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
	}
	<-done
	if got := recvd.Load(); got != n {
		t.Fatalf("%d of %d datagrams arrived", got, n)
	}
}
