package telehash

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// memPipe is one end of an in-memory pipe pair: Send queues the packet
// for the other mesh, which receives it as coming over the peer end.
type memPipe struct {
	name string
	to   *Mesh
	peer *memPipe // the end the other mesh sees packets come from
	q    chan []byte
	done chan struct{}

	mu      sync.Mutex
	rnd     *rand.Rand
	drop    float64 // share of packets dropped
	blocked bool
	sent    int
}

// newMemPipes returns the pipe a uses to reach b and the one b uses to
// reach a; each drops the share drop of its packets.
func newMemPipes(t testing.TB, a, b *Mesh, drop float64) (ab, ba *memPipe) {
	ab = &memPipe{name: "mem:a->b", to: b, q: make(chan []byte, 256), done: make(chan struct{}),
		rnd: rand.New(rand.NewPCG(1, 2)), drop: drop}
	ba = &memPipe{name: "mem:b->a", to: a, q: make(chan []byte, 256), done: make(chan struct{}),
		rnd: rand.New(rand.NewPCG(3, 4)), drop: drop}
	ab.peer, ba.peer = ba, ab
	for _, p := range []*memPipe{ab, ba} {
		go p.run()
		t.Cleanup(func() { close(p.done) })
	}
	return ab, ba
}

func (p *memPipe) String() string { return p.name }

func (p *memPipe) Send(b []byte) error {
	p.mu.Lock()
	drop := p.blocked || p.rnd.Float64() < p.drop
	p.sent++
	p.mu.Unlock()
	if drop {
		return nil
	}
	select {
	case p.q <- append([]byte(nil), b...):
	default: // full: dropped, as a datagram would be
	}
	return nil
}

func (p *memPipe) run() {
	for {
		select {
		case <-p.done:
			return
		case b := <-p.q:
			p.to.Receive(b, p.peer)
		}
	}
}

func (p *memPipe) setBlocked(v bool) {
	p.mu.Lock()
	p.blocked = v
	p.mu.Unlock()
}

func (p *memPipe) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sent
}

// pipeOnlyInfo returns m's link info with pipe as its only path.
func pipeOnlyInfo(m *Mesh, pipe Pipe) LinkInfo {
	return LinkInfo{Keys: m.LinkInfo().Keys, Pipes: []Pipe{pipe}}
}

// linkOverPipe links a to b over pipe only and waits for both ends.
func linkOverPipe(t testing.TB, a, b *Mesh, pipe Pipe) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := a.Link(ctx, pipeOnlyInfo(b, pipe)); err != nil {
		t.Fatal(err)
	}
	for !b.Up(a.Hashname()) {
		if ctx.Err() != nil {
			t.Fatal("b never saw the link up")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestPipeOnlyStream(t *testing.T) {
	a := newTestMesh(t, "pipe-a", fastOpts())
	opts := fastOpts()
	opts.Allow = allowAll
	b := newTestMesh(t, "pipe-b", opts)
	ab, ba := newMemPipes(t, a, b, 0)
	linkOverPipe(t, a, b, ab)
	if got := a.lookup(b.Hashname()).path(); got != pipePath(ab) {
		t.Fatalf("a's path to b is %v, want the pipe", got)
	}
	if got := b.lookup(a.Hashname()).path(); got != pipePath(ba) {
		t.Fatalf("b's path to a is %v, want the pipe", got)
	}
	udpBefore := a.Stats().Sent - uint64(ab.count())
	runStreamPair(t, a, b, 256<<10)
	if udp := a.Stats().Sent - uint64(ab.count()); udp != udpBefore {
		t.Fatalf("a sent %d datagrams over UDP, want all over the pipe", udp-udpBefore)
	}
	if ab.count() == 0 || ba.count() == 0 {
		t.Fatalf("pipes carried %d and %d packets", ab.count(), ba.count())
	}
}

func TestPipeLossyStream(t *testing.T) {
	a := newTestMesh(t, "pipe-lossy-a", fastOpts())
	opts := fastOpts()
	opts.Allow = allowAll
	b := newTestMesh(t, "pipe-lossy-b", opts)
	ab, _ := newMemPipes(t, a, b, 0.10)
	linkOverPipe(t, a, b, ab)
	runStreamPair(t, a, b, 256<<10)
	if a.Stats().Retransmits+b.Stats().Retransmits == 0 {
		t.Fatal("no retransmissions with 10% loss")
	}
}

func TestPipeUnknownPeerRefused(t *testing.T) {
	opts := fastOpts()
	opts.HandshakeTimeout = 1500 * time.Millisecond
	a := newTestMesh(t, "pipe-stranger", opts)
	b := newTestMesh(t, "pipe-closed", fastOpts()) // Allow nil: nobody unknown
	ab, ba := newMemPipes(t, a, b, 0)
	_, err := a.Link(context.Background(), pipeOnlyInfo(b, ab))
	if !errors.Is(err, ErrLinkTimeout) {
		t.Fatalf("link: %v, want %v", err, ErrLinkTimeout)
	}
	if s := b.Stats(); s.DropUnauthorized == 0 {
		t.Fatalf("b stats %+v: no unauthorized handshake counted", s)
	}
	if ba.count() != 0 {
		t.Fatalf("b answered the stranger with %d packets", ba.count())
	}
	if b.lookup(a.Hashname()) != nil {
		t.Fatal("b keeps a peer for the stranger")
	}
}

// TestPipeAddPipeBeforeLink offers a pipe to a peer not known yet: Link
// with keys only then uses it.
func TestPipeAddPipeBeforeLink(t *testing.T) {
	a := newTestMesh(t, "pipe-add-a", fastOpts())
	opts := fastOpts()
	opts.Allow = allowAll
	b := newTestMesh(t, "pipe-add-b", opts)
	ab, _ := newMemPipes(t, a, b, 0)
	a.AddPipe(b.Hashname(), ab)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := a.Link(ctx, LinkInfo{Keys: b.LinkInfo().Keys}); err != nil {
		t.Fatal(err)
	}
	runStreamPair(t, a, b, 16<<10)
}

// TestPipeFailoverToUDP: a pipe and a UDP path side by side; when the current
// path stops carrying, keepalives over the other bring the link back.
func TestPipeFailoverToUDP(t *testing.T) {
	a := newTestMesh(t, "pipe-fo-a", fastOpts())
	opts := fastOpts()
	opts.Allow = allowAll
	b := newTestMesh(t, "pipe-fo-b", opts)
	ab, ba := newMemPipes(t, a, b, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info := b.LinkInfo()
	info.Pipes = []Pipe{ab}
	if _, err := a.Link(ctx, info); err != nil {
		t.Fatal(err)
	}
	release, err := a.Keep(b.Hashname())
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	// Block the pipe: traffic must go on over UDP.
	ab.setBlocked(true)
	ba.setBlocked(true)
	runStreamPair(t, a, b, 64<<10)
	if got := b.lookup(a.Hashname()).path(); got.isPipe() {
		t.Fatalf("b's path to a is %v with the pipe blocked", got)
	}
}

func TestReceiveKeepsBuffer(t *testing.T) {
	b := newTestMesh(t, "pipe-keep", fastOpts())
	a := newTestMesh(t, "pipe-keep-a", fastOpts())
	ab, _ := newMemPipes(t, a, b, 0)
	x, err := NewExchange(newDetRand("x"), a.id, b.id.Key(CS3a))
	if err != nil {
		t.Fatal(err)
	}
	msg, err := x.Handshake()
	if err != nil {
		t.Fatal(err)
	}
	c, err := Cloak(newDetRand("c"), msg, 2)
	if err != nil {
		t.Fatal(err)
	}
	orig := append([]byte(nil), c...)
	b.Receive(c, ab.peer)
	if !bytes.Equal(c, orig) {
		t.Fatal("Receive modified its argument")
	}
}

type badPipe struct{ b []byte }

func (badPipe) Send([]byte) error { return nil }
func (badPipe) String() string    { return "bad" }

func TestPipeNotComparablePanics(t *testing.T) {
	m := newTestMesh(t, "pipe-bad", fastOpts())
	defer func() {
		if recover() == nil {
			t.Fatal("no panic for a non-comparable Pipe")
		}
	}()
	m.AddPipe(m.Hashname(), badPipe{})
}

// TestPipeRateLimitedPerPipe: handshakes with new keys over one pipe
// share that pipe's budget, as those from one UDP address do; another
// pipe has its own.
func TestPipeRateLimitedPerPipe(t *testing.T) {
	opts := fastOpts()
	opts.Allow = allowAll
	b := newTestMesh(t, "pipe-limit", opts)
	p1, p2 := &sinkPipe{"one"}, &sinkPipe{"two"}
	hs := func() []byte {
		x, err := NewExchange(nil, mustIdentity(t, "pipe-limit-a"), b.id.Key(CS3a))
		if err != nil {
			t.Fatal(err)
		}
		msg, err := x.Handshake()
		if err != nil {
			t.Fatal(err)
		}
		return msg
	}
	for range 30 {
		b.Receive(hs(), p1)
	}
	if got := b.Stats().DropRateLimited; got < 15 || got > 20 {
		t.Fatalf("%d of 30 handshakes over one pipe rate limited, want about 20 (burst 10)", got)
	}
	before := b.Stats().DropRateLimited
	for range 5 {
		b.Receive(hs(), p2)
	}
	if got := b.Stats().DropRateLimited; got != before {
		t.Fatalf("another pipe's handshakes were limited (%d)", got-before)
	}
}

// sinkPipe drops everything sent over it.
type sinkPipe struct{ name string }

func (p *sinkPipe) Send([]byte) error { return nil }
func (p *sinkPipe) String() string    { return p.name }
