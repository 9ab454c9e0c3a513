package telehash

import (
	"context"
	"encoding/binary"
	"reflect"
	"testing"
	"time"
)

// bareChannel returns a reliable channel whose peer has no session: what
// it sends is dropped, so tests drive it packet by packet.
func bareChannel(t testing.TB, window int) *Channel {
	t.Helper()
	c := newChannel(barePeer(t, window), 1, "t", true, true, nil)
	t.Cleanup(func() { c.fail(ErrChannelClosed, "") })
	return c
}

// barePeer returns a peer without session on a mesh without socket.
func barePeer(t testing.TB, window int) *peer {
	t.Helper()
	opts := MeshOptions{Window: window, ChannelTimeout: time.Hour}
	opts.setDefaults()
	m := &Mesh{opts: opts, log: opts.Logger}
	kb := mustIdentity(t, "bare-b").keypair3a()
	x, err := NewExchange(nil, mustIdentity(t, "bare-a"), kb.Public[:])
	if err != nil {
		t.Fatal(err)
	}
	return newPeer(m, "bare", x)
}

func TestReliableMissEncoding(t *testing.T) {
	c := bareChannel(t, 20)
	for _, s := range []uint32{1, 2, 3, 5, 7, 8, 10} {
		c.receive(&innerPkt{c: 1, seq: s, body: []byte{byte(s)}})
	}
	c.mu.Lock()
	var h outHead
	c.ackFieldsLocked(&h, 64)
	c.mu.Unlock()
	// ack 3; missing 4, 6, 9; edge = 3 + 20 - 3 unread = 20
	if h.ack != 3 || !reflect.DeepEqual(h.miss, []uint32{1, 2, 3, 11}) {
		t.Fatalf("ack %d miss %v", h.ack, h.miss)
	}
	// a truncated list still ends with the capacity
	c.mu.Lock()
	c.ackFieldsLocked(&h, 1)
	c.mu.Unlock()
	if !reflect.DeepEqual(h.miss, []uint32{1, 16}) {
		t.Fatalf("truncated miss %v", h.miss)
	}
	// beyond the edge is dropped
	c.receive(&innerPkt{c: 1, seq: 21})
	if c.rcv.ring[21%20] != nil {
		t.Fatal("packet beyond the window kept")
	}
	for _, s := range []uint32{4, 6, 9} {
		c.receive(&innerPkt{c: 1, seq: s, body: []byte{byte(s)}})
	}
	ctx := context.Background()
	for want := 1; want <= 10; want++ {
		ip, err := c.recv(ctx)
		if err != nil || ip.seq != uint32(want) {
			t.Fatalf("recv %d: %v %v", want, ip, err)
		}
	}
}

func TestReliableSenderMiss(t *testing.T) {
	c := bareChannel(t, 64)
	ctx := context.Background()
	for i := 0; i < 10; i++ {
		if err := c.send(ctx, outHead{}, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if c.snd.next != 11 || len(c.snd.q) != 10 {
		t.Fatalf("next %d q %d", c.snd.next, len(c.snd.q))
	}
	// telehash-js style: ack 2, a gap at 5 listed, 3 implied, capacity 50
	for _, op := range c.snd.q[2:] {
		op.sentAt = time.Now().Add(-5 * time.Second)
	}
	c.receive(&innerPkt{c: 1, ack: 2, miss: []uint32{3, 45}})
	if c.snd.acked != 2 || len(c.snd.q) != 8 || c.snd.peerWin != 48 {
		t.Fatalf("acked %d q %d win %d", c.snd.acked, len(c.snd.q), c.snd.peerWin)
	}
	if c.snd.q[0].resends != 1 || c.snd.q[2].resends != 1 || c.snd.q[1].resends != 0 {
		t.Fatalf("resends %d %d %d", c.snd.q[0].resends, c.snd.q[1].resends, c.snd.q[2].resends)
	}
	// an immediate repeat is not resent again
	c.receive(&innerPkt{c: 1, ack: 2, miss: []uint32{3, 45}})
	if c.snd.q[0].resends != 1 {
		t.Fatal("resent twice at once")
	}
	// bogus acks are ignored
	c.receive(&innerPkt{c: 1, ack: 99, miss: []uint32{1}})
	if c.snd.acked != 2 {
		t.Fatal("ack beyond next accepted")
	}
	c.receive(&innerPkt{c: 1, ack: 10})
	if len(c.snd.q) != 0 {
		t.Fatalf("q %d after full ack", len(c.snd.q))
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestReliablePartialAck(t *testing.T) {
	c := bareChannel(t, 64)
	ctx := context.Background()
	for i := 0; i < 20; i++ {
		if err := c.send(ctx, outHead{}, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	// the open (seq 1) and what followed were lost: a timeout resends
	// the oldest packets
	c.mu.Lock()
	old := time.Now().Add(-time.Second)
	for _, op := range c.snd.q {
		op.sentAt = old
	}
	c.mu.Unlock()
	c.onRTO()
	if c.snd.q[0].resends != 1 || c.snd.q[8].resends != 0 {
		t.Fatalf("RTO resent %d %d", c.snd.q[0].resends, c.snd.q[8].resends)
	}
	// acks of those retransmissions with nothing buffered beyond: the
	// packets sent before them are lost and resent at once
	c.receive(&innerPkt{c: 1, ack: 1, miss: []uint32{64}})
	// seqs 2-8 went out with seq 1 and are in flight; 9-16 are resent
	want := []int{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0}
	for i, op := range c.snd.q {
		if op.resends != want[i] {
			t.Fatalf("after partial ack: seq %d resent %d times, want %d", op.h.seq, op.resends, want[i])
		}
	}
}

// FuzzReliableReceive feeds arbitrary sends, packets and reads to a
// reliable channel and checks its invariants.
func FuzzReliableReceive(f *testing.F) {
	f.Add([]byte{0, 0, 1, 0, 0, 0, 0, 1, 0, 2, 0, 0, 0, 0, 2, 0, 0, 0, 0})
	f.Add([]byte{3, 3, 3, 1, 0, 5, 0, 2, 3, 1, 1, 1, 1, 0, 1, 0, 1, 0, 0, 9, 2, 2})
	p := barePeer(f, 16)
	f.Fuzz(func(t *testing.T, ops []byte) {
		c := newChannel(p, 1, "t", true, true, nil)
		defer c.fail(ErrChannelClosed, "")
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // never block
		lastDone := uint32(0)
		for len(ops) >= 5 {
			op, a, b := ops[0]%4, binary.BigEndian.Uint16(ops[1:]), binary.BigEndian.Uint16(ops[3:])
			ops = ops[5:]
			switch op {
			case 0: // content packet
				c.receive(&innerPkt{c: 1, seq: uint32(a % 64), end: b == 7})
			case 1: // ack with miss
				n := int(b % 5)
				miss := make([]uint32, 0, n)
				for i := 0; i < n && len(ops) > 0; i++ {
					miss = append(miss, uint32(ops[0]))
					ops = ops[1:]
				}
				c.receive(&innerPkt{c: 1, ack: uint32(a % 64), miss: miss})
			case 2:
				c.send(ctx, outHead{end: b == 7}, []byte{1})
			case 3:
				c.recv(ctx)
			}
			c.mu.Lock()
			r, s := &c.rcv, &c.snd
			if r.inDone < lastDone {
				t.Fatalf("inDone went back %d -> %d", lastDone, r.inDone)
			}
			lastDone = r.inDone
			n := 0
			for i, p := range r.ring {
				if p != nil {
					n++
					if p.seq <= r.inDone || p.seq > r.inDone+r.cap || p.seq%r.cap != uint32(i) {
						t.Fatalf("ring slot %d holds seq %d (inDone %d)", i, p.seq, r.inDone)
					}
				}
			}
			if n != r.nbuf || r.unread() > r.cap {
				t.Fatalf("nbuf %d, ring %d, unread %d", r.nbuf, n, r.unread())
			}
			if uint32(len(s.q)) != s.next-1-s.acked {
				t.Fatalf("q %d, next %d, acked %d", len(s.q), s.next, s.acked)
			}
			for i, p := range s.q {
				if p.h.seq != s.acked+1+uint32(i) {
					t.Fatalf("q[%d] seq %d, acked %d", i, p.h.seq, s.acked)
				}
			}
			c.mu.Unlock()
		}
	})
}

// A retransmission timeout that fired while the packets were only
// delayed (queued behind a busy receiver) resends the oldest packets
// once; the acks of the delayed originals that follow at once are not
// taken for acks of those retransmissions, which would resend the rest
// of the window as lost, batch after batch (each ack covering the batch
// just resent), doubling the queue that caused the timeout.
func TestReliableSpuriousTimeoutNoGoBack(t *testing.T) {
	c := bareChannel(t, 1024)
	ctx := context.Background()
	c.snd.cwnd, c.snd.peerWin = 100, 1024 // opened by earlier acks
	for i := 0; i < 65; i++ {
		if err := c.send(ctx, outHead{}, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	// seq 1 is acked after 10 s: no round trip takes less (rto 2 s max)
	c.mu.Lock()
	c.snd.q[0].sentAt = time.Now().Add(-10 * time.Second)
	c.mu.Unlock()
	c.receive(&innerPkt{c: 1, ack: 1, miss: []uint32{1024}})
	if c.snd.acked != 1 || c.snd.minRTT < 9*time.Second {
		t.Fatalf("acked %d minRTT %v", c.snd.acked, c.snd.minRTT)
	}
	// the rest waits in a queue longer than the timeout, which resends
	// the oldest
	c.mu.Lock()
	for _, op := range c.snd.q {
		op.sentAt = time.Now().Add(-3 * time.Second)
	}
	c.mu.Unlock()
	c.onRTO()
	if n := c.m.stats.retransmits.Load(); n != rtoBurst {
		t.Fatalf("timeout resent %d", n)
	}
	// the queued originals arrive, acked every 8 as they come in order
	for a := uint32(9); a <= 65; a += 8 {
		c.receive(&innerPkt{c: 1, ack: a, miss: []uint32{1024}})
		if c.snd.acked != a {
			t.Fatalf("acked %d, want %d", c.snd.acked, a)
		}
	}
	if n := c.m.stats.retransmits.Load(); n != rtoBurst {
		t.Fatalf("%d packets resent, want only the %d the timeout resent", n, rtoBurst)
	}
}
