package telehash

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// maxSendBatch bounds the packets queued under one lock and sealed and
// written together (a GSO write takes at most 64 datagrams).
const maxSendBatch = 48

// sendStream sends p as stream packets of up to StreamChunk bytes,
// "frag":true on all but the last. It queues as many packets as the
// send window lets go at once and writes them together (sendInners):
// one lock, one copy of the bytes and, with batching, one system call
// for a window's worth. It blocks while the window is full and returns
// how many bytes were queued.
func (c *Channel) sendStream(ctx context.Context, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c.mu.Lock()
		room, err := c.waitWindowLocked(ctx)
		if err != nil {
			return n, err
		}
		k := min(room, maxSendBatch, (len(p)-n+StreamChunk-1)/StreamChunk)
		end := min(n+k*StreamChunk, len(p))
		block := append([]byte(nil), p[n:end]...) // kept until acknowledged
		inners := make([][]byte, 0, k)
		now := time.Now()
		for off := 0; off < len(block); off += StreamChunk {
			chunk := block[off:min(off+StreamChunk, len(block)):min(off+StreamChunk, len(block))]
			h := outHead{c: c.id, frag: n+off+len(chunk) < len(p)}
			inner, err := c.queueLocked(h, chunk, now)
			if err != nil {
				c.mu.Unlock()
				c.p.sendInners(inners)
				return n + off, err
			}
			inners = append(inners, inner)
		}
		c.armRTOLocked()
		c.mu.Unlock()
		c.p.sendInners(inners) // lost packets are retransmitted
		n = end
	}
	return n, nil
}

// sealScratch holds one sendInners call's buffers.
type sealScratch struct {
	rand []byte
	ds   [][]byte
	bufs [][]byte
}

var sealPool = sync.Pool{New: func() any {
	sc := &sealScratch{rand: make([]byte, maxSendBatch*sealRandSize)}
	for range maxSendBatch {
		sc.bufs = append(sc.bufs, make([]byte, 0, MaxDatagramSize+cloakSpare))
	}
	sc.ds = make([][]byte, 0, maxSendBatch)
	return sc
}}

// sendInners encrypts inner packets and sends them to the peer's path
// together: in one batch of datagrams, with sizes made equal for GSO
// where they nearly are (padInners). It recycles the inners (putInner),
// as sendRaw does.
func (p *peer) sendInners(inners [][]byte) error {
	switch len(inners) {
	case 0:
		return nil
	case 1:
		return p.sendRaw(inners[0])
	}
	for _, in := range inners {
		if len(in) > maxInnerSize {
			return fmt.Errorf("%w: channel packet of %d bytes exceeds %d on the wire", ErrTooLarge,
				len(in)+channelOverhead, MaxDatagramSize)
		}
	}
	s, tok, err := p.x.sealKeys()
	if err != nil {
		return err
	}
	to := p.path()
	if !to.isPipe() && p.m.io.gso() {
		padInners(inners)
	}
	sc := sealPool.Get().(*sealScratch)
	defer sealPool.Put(sc)
	var first error
	for len(inners) > 0 {
		k := min(len(inners), maxSendBatch)
		rb := sc.rand[:k*sealRandSize]
		if err := readSealRand(p.m.opts.Rand, rb); err != nil {
			return err
		}
		sc.ds = sc.ds[:0]
		for i, in := range inners[:k] {
			sc.bufs[i] = sealDatagram(sc.bufs[i][:0], s, tok, rb[i*sealRandSize:], in)
			sc.ds = append(sc.ds, sc.bufs[i])
			putInner(in)
		}
		if err := p.m.sendBatch(sc.ds, to); err != nil && first == nil {
			first = err
		}
		inners = inners[k:]
	}
	clear(sc.ds)
	return first
}
