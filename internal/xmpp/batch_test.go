package xmpp

import (
	"bytes"
	"context"
	"encoding/binary"
	"testing"
	"time"
)

// burst sends n numbered datagrams of size bytes from s to the node
// whose datagrams r records, and checks they all arrive, in order. It
// returns how many messages carried them.
func burst(t *testing.T, s *Session, to string, r *recorder, n, size int) uint64 {
	t.Helper()
	before, start := s.Stats(), time.Now()
	defer func() { t.Logf("%d datagrams of %d bytes in %v", n, size, time.Since(start)) }()
	for i := range n {
		b := bytes.Repeat([]byte{byte(i)}, size)
		binary.BigEndian.PutUint32(b, uint32(i))
		if err := s.Send(context.Background(), to, b); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		select {
		case d := <-r.data:
			if len(d.b) != size || binary.BigEndian.Uint32(d.b) != uint32(i) {
				t.Fatalf("datagram %d: got %d bytes, number %d", i, len(d.b), binary.BigEndian.Uint32(d.b))
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("datagram %d of %d not received", i, n)
		}
	}
	after := s.Stats()
	if after.Sent-before.Sent != uint64(n) {
		t.Fatalf("sent %d datagrams, counted %d", n, after.Sent-before.Sent)
	}
	return after.Messages - before.Messages
}

// TestIntegrationBatches: datagrams queued while the connection is busy
// go several per message to nodes that take batches, one per message to
// a node of before batches (which ignores <b/>), and that node's
// one-datagram messages are still read.
func TestIntegrationBatches(t *testing.T) {
	srv := startServer(t)
	ra, rb, rc := newRecorder(), newRecorder(), newRecorder()
	ca := config(srv, "alice", 0, srv.JID("bob"), srv.JID("carol"))
	ra.hook(&ca)
	cb := config(srv, "bob", 1, srv.JID("alice"))
	rb.hook(&cb)
	cc := config(srv, "carol", 2, srv.JID("alice"))
	cc.noBatch = true
	rc.hook(&cc)
	a, b, c := dial(t, ca), dial(t, cb), dial(t, cc)
	pb, pc := ra.waitPeer(t, hn(1)), ra.waitPeer(t, hn(2))
	pa := rc.waitPeer(t, hn(0))
	if !pb.Batch || pc.Batch || pa.Batch {
		t.Fatalf("batch flags: bob %v (want true), carol %v, alice seen by carol %v (want false)", pb.Batch, pc.Batch, pa.Batch)
	}

	const n = 500
	if m := burst(t, a, b.LocalJID(), rb, n, 1200); m > n/2 {
		t.Fatalf("%d datagrams to a batching node took %d messages", n, m)
	} else {
		t.Logf("%d datagrams to a batching node in %d messages", n, m)
	}
	if m := burst(t, a, c.LocalJID(), rc, n, 1200); m != n {
		t.Fatalf("%d datagrams to a node of before batches took %d messages", n, m)
	}
	if m := burst(t, c, a.LocalJID(), ra, n, 1200); m != n {
		t.Fatalf("%d datagrams from a node of before batches took %d messages", n, m)
	}
	// A batch never exceeds maxBatchSend: datagrams of MaxDatagram go
	// one per message even to a batching node.
	if m := burst(t, a, b.LocalJID(), rb, 20, MaxDatagram); m != 20 {
		t.Fatalf("20 datagrams of %d bytes took %d messages", MaxDatagram, m)
	}
}
