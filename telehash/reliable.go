package telehash

import (
	"context"
	"fmt"
	"math"
	"time"
)

// Reliable channel tuning (spec: e3x/reliable.md; notes: telehash-js
// resends after 2 s, times out after 10 s, buffers 50 packets).
const (
	initialPeerWindow = 50 // what telehash-js accepts beyond its ack
	initialCwnd       = 32 // congestion window at start, in packets
	minCwnd           = 4
	minSsthresh       = 32      // loopback and LAN losses are rarely congestion
	avoidGrowth       = 4       // congestion avoidance: packets per RTT
	maxWindow         = 1 << 14 // cap on congestion and advertised windows
	initialRTO        = 500 * time.Millisecond
	minRTO            = 200 * time.Millisecond
	maxRTO            = 2 * time.Second
	minResendGap      = 2 * time.Millisecond
	rtoBurst          = 8 // packets resent per retransmission timeout
	ackEvery          = 8 // in-order packets between acks
	ackDelay          = 2 * time.Millisecond
	maxPiggyMiss      = 64
	// ackReserve is the worst-case size of `,"ack":N,"miss":[N]`.
	ackReserve = 37
)

// outPkt is a sent reliable packet kept until acknowledged.
type outPkt struct {
	h       outHead
	body    []byte
	baseLen int // inner size without ack/miss
	sentAt  time.Time
	resends int
	missed  bool // reported missing by the receiver
}

// sndState is the sending half of a reliable channel.
type sndState struct {
	next, acked    uint32    // next seq to send; highest seq acknowledged
	q              []*outPkt // seqs acked+1 .. next-1
	peerWin        uint32    // peer accepts seqs up to acked+peerWin
	cwnd, ssthresh float64
	recover        uint32 // loss reactions wait until this seq is acked
	srtt, rttvar   time.Duration
	minRTT         time.Duration // lowest RTT sample: no ack comes sooner
	rto            time.Duration
	progressAt     time.Time
	holes          bool // the last miss listed gaps: the next ack may fill one
	probe          bool // send one packet past a closed window
	timer          *time.Timer
	armed          bool
	rack           *time.Timer // resends packets reported missing (onRack)
	rackArmed      bool
}

func (s *sndState) init() {
	s.next, s.peerWin, s.cwnd, s.ssthresh, s.rto = 1, initialPeerWindow, initialCwnd, maxWindow, initialRTO
}

func (s *sndState) stopTimers() {
	if s.timer != nil {
		s.timer.Stop()
	}
	if s.rack != nil {
		s.rack.Stop()
	}
	s.armed, s.rackArmed = false, false
}

// resendGap is how long a retransmitted packet gets before it is resent
// again: a little more than a round trip.
func (s *sndState) resendGap() time.Duration { return max(s.srtt+s.srtt/4, minResendGap) }

// sampleRTT updates the RTT estimate (RFC 6298).
func (s *sndState) sampleRTT(r time.Duration) {
	if s.minRTT == 0 || r < s.minRTT {
		s.minRTT = r
	}
	if s.srtt == 0 {
		s.srtt, s.rttvar = r, r/2
	} else {
		d := s.srtt - r
		if d < 0 {
			d = -d
		}
		s.rttvar = (3*s.rttvar + d) / 4
		s.srtt = (7*s.srtt + r) / 8
	}
	s.rto = min(max(s.srtt+4*s.rttvar, minRTO), maxRTO)
}

// loss reacts to a loss once per window of data.
func (s *sndState) loss(seq uint32, timeout bool) {
	if seq <= s.recover && !timeout {
		return
	}
	s.ssthresh = max(s.cwnd/2, minSsthresh)
	s.cwnd = min(s.cwnd, s.ssthresh)
	if timeout {
		s.cwnd = minCwnd
	}
	s.recover = s.next - 1
}

// rcvState is the receiving half of a reliable channel.
type rcvState struct {
	cap      uint32
	inDone   uint32      // highest seq received in order
	ring     []*innerPkt // out-of-order packets, at seq % cap
	nbuf     int
	maxSeen  uint32
	readq    []*innerPkt // in order, not yet read by the app
	rhead    int
	unacked  int
	lastEdge uint32 // last advertised highest acceptable seq
	any      bool   // a seq was received: outgoing packets carry ack
	due      bool   // ackEvery in-order packets unacknowledged: ack may wait for the batch end
	timer    *time.Timer
	timerOn  bool
}

func (r *rcvState) init(capacity uint32) {
	r.cap = capacity
	r.ring = make([]*innerPkt, capacity)
}

func (r *rcvState) stopTimers() {
	if r.timer != nil {
		r.timer.Stop()
	}
	r.timerOn = false
}

func (r *rcvState) unread() uint32 { return uint32(len(r.readq) - r.rhead) }

// edge is the highest seq the receive buffer accepts.
func (r *rcvState) edge() uint32 { return r.inDone + r.cap - r.unread() }

func (r *rcvState) pop() *innerPkt {
	if r.rhead >= len(r.readq) {
		return nil
	}
	ip := r.readq[r.rhead]
	r.readq[r.rhead] = nil
	r.rhead++
	if r.rhead == len(r.readq) {
		r.readq, r.rhead = r.readq[:0], 0
	} else if r.rhead > 64 && r.rhead > len(r.readq)/2 {
		n := copy(r.readq, r.readq[r.rhead:])
		clear(r.readq[n:])
		r.readq, r.rhead = r.readq[:n], 0
	}
	return ip
}

func (r *rcvState) discard() {
	r.readq, r.rhead = nil, 0
}

// sendReliable queues and sends one content packet, blocking while the
// window is full.
func (c *Channel) sendReliable(ctx context.Context, h outHead, body []byte) error {
	c.mu.Lock()
	if _, err := c.waitWindowLocked(ctx); err != nil {
		return err
	}
	inner, err := c.queueLocked(h, append([]byte(nil), body...), time.Now())
	if err != nil {
		c.mu.Unlock()
		return err
	}
	c.armRTOLocked()
	c.mu.Unlock()
	c.p.sendRaw(inner) // a lost packet is retransmitted
	return nil
}

// waitWindowLocked waits, c.mu held, until the send window lets packets
// go and returns how many (at least 1). On error c.mu is released.
func (c *Channel) waitWindowLocked(ctx context.Context) (int, error) {
	s := &c.snd
	for {
		if c.closed || c.err != nil || c.endSent {
			err := c.errLocked()
			c.mu.Unlock()
			return 0, err
		}
		if s.next == math.MaxUint32 {
			c.mu.Unlock()
			return 0, fmt.Errorf("%w: channel sequence numbers used up", ErrExhausted)
		}
		inflight := s.next - 1 - s.acked
		if win := min(uint32(s.cwnd), s.peerWin); inflight < win {
			return int(min(win-inflight, math.MaxUint32-s.next)), nil
		}
		if s.probe {
			return 1, nil
		}
		if len(s.q) == 0 {
			c.armRTOLocked() // persist: probe a closed window
		}
		w := c.writersWake()
		c.mu.Unlock()
		select {
		case <-w:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		c.mu.Lock()
	}
}

// queueLocked gives the packet h, body (which it keeps) the next seq,
// queues it until acknowledged and returns its inner packet to send.
func (c *Channel) queueLocked(h outHead, body []byte, now time.Time) ([]byte, error) {
	s := &c.snd
	h.seq = s.next
	var scratch [256]byte
	head, err := appendInner(scratch[:0], &h, nil)
	if err == nil && len(head)+len(body)+ackReserve > maxInnerSize {
		err = fmt.Errorf("%w: channel packet of %d bytes exceeds %d on the wire", ErrTooLarge,
			len(head)+len(body)+ackReserve+channelOverhead, MaxDatagramSize)
	}
	if err != nil {
		return nil, err
	}
	op := &outPkt{h: h, body: body, baseLen: len(head) + len(body), sentAt: now}
	s.next++
	s.probe = false
	if len(s.q) == 0 {
		s.progressAt = now
	}
	s.q = append(s.q, op)
	if h.end {
		c.endSent = true
	}
	return c.innerLocked(op), nil
}

// innerLocked encodes op with the current ack and miss.
func (c *Channel) innerLocked(op *outPkt) []byte {
	h := op.h
	budget := min(max((maxInnerSize-op.baseLen-ackReserve)/11, 0), maxPiggyMiss)
	c.ackFieldsLocked(&h, budget)
	var buf []byte
	if n := op.baseLen + ackReserve + 11*len(h.miss); n <= innerCap {
		buf = getInner()
	} else {
		buf = make([]byte, 0, n)
	}
	b, _ := appendInner(buf, &h, op.body)
	return b
}

// pureAckLocked encodes an ad-hoc ack (no seq).
func (c *Channel) pureAckLocked() []byte {
	h := outHead{c: c.id}
	c.ackFieldsLocked(&h, maxPiggyMiss)
	b, _ := appendInner(make([]byte, 0, 64+11*len(h.miss)), &h, nil)
	return b
}

// ackFieldsLocked sets ack and miss (up to budget gaps, then the buffer
// edge, spec: e3x/reliable.md "miss") once anything was received.
func (c *Channel) ackFieldsLocked(h *outHead, budget int) {
	r := &c.rcv
	if !r.any {
		return
	}
	h.ack = r.inDone
	edge := r.edge()
	last := r.inDone
	miss := make([]uint32, 0, 4)
	if r.nbuf > 0 {
		for s := r.inDone + 1; s < r.maxSeen && len(miss) < budget; s++ {
			if r.ring[s%r.cap] == nil {
				miss = append(miss, s-last)
				last = s
			}
		}
	}
	h.miss = append(miss, edge-last)
	r.lastEdge = edge
	r.unacked = 0
}

// accept processes the open packet of an incoming channel.
func (c *Channel) accept(ip *innerPkt) {
	c.mu.Lock()
	if ip.end {
		c.rcvEnded, c.eof = true, true
	}
	if !c.reliable {
		c.mu.Unlock()
		return
	}
	c.rcv.any = true
	c.rcv.inDone = ip.seq
	ack := c.pureAckLocked()
	c.mu.Unlock()
	c.p.sendRaw(ack)
}

// receiveReliable processes ack, miss and content of a packet; fresh
// (if not nil) is called when it brought new content or a new ack.
func (c *Channel) receiveReliable(ip *innerPkt, fresh func()) {
	now := time.Now()
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	ackNow, isNew := false, false
	if ip.seq > 0 {
		ackNow, isNew = c.receiveSeqLocked(ip)
	}
	if ackNow && c.rcv.due {
		// in order, ackEvery since the last ack: cumulated into one
		// ack after the read batch (ackbatch.go); the ack timer stays
		// the fallback
		c.rcv.due, ackNow = false, false
		c.m.deferAck(c)
	}
	acked := c.snd.acked
	out := c.processAckLocked(ip, now)
	isNew = isNew || c.snd.acked > acked
	switch {
	case len(out) > 0: // resends carry the ack
	case ackNow:
		out = append(out, c.pureAckLocked())
	case c.rcv.unacked > 0 && !c.rcv.timerOn:
		c.rcv.timerOn = true
		if c.rcv.timer == nil {
			c.rcv.timer = time.AfterFunc(ackDelay, c.onAckTimer)
		} else {
			c.rcv.timer.Reset(ackDelay)
		}
	}
	fin := !c.closed && c.endSent && len(c.snd.q) == 0 && c.rcvEnded
	c.mu.Unlock()
	if isNew && fresh != nil {
		fresh()
	}
	for _, b := range out {
		c.p.sendRaw(b)
	}
	if fin {
		c.finish()
	}
}

// receiveSeqLocked buffers or delivers a content packet and reports
// whether an ack should go out now, and whether the packet was new (not
// a duplicate, not beyond the window).
func (c *Channel) receiveSeqLocked(ip *innerPkt) (ackNow, isNew bool) {
	r := &c.rcv
	s := ip.seq
	r.any = true
	if s <= r.inDone || r.ring[s%r.cap] != nil || c.rcvEnded {
		c.m.stats.duplicates.Add(1)
		return true, false // duplicate: the sender missed our ack
	}
	if s > r.edge() {
		c.m.stats.dropOverflow.Add(1)
		return true, false
	}
	hadGap := r.nbuf > 0
	r.unacked++
	if s != r.inDone+1 {
		r.ring[s%r.cap] = ip
		r.nbuf++
		r.maxSeen = max(r.maxSeen, s)
		return !hadGap || r.unacked >= ackEvery/2, true
	}
	c.deliverLocked(ip)
	for r.nbuf > 0 {
		i := (r.inDone + 1) % r.cap
		nx := r.ring[i]
		if nx == nil {
			break
		}
		r.ring[i] = nil
		r.nbuf--
		c.deliverLocked(nx)
	}
	c.wakeReaders()
	if hadGap || c.rcvEnded {
		return true, true
	}
	r.due = r.unacked >= ackEvery
	return r.due, true
}

// deliverLocked appends an in-order packet to the read queue.
func (c *Channel) deliverLocked(ip *innerPkt) {
	c.rcv.inDone = ip.seq
	if ip.end {
		c.rcvEnded = true
	}
	if !c.readShut {
		c.rcv.readq = append(c.rcv.readq, ip)
	}
}

// processAckLocked applies ack and miss and returns packets to resend.
func (c *Channel) processAckLocked(ip *innerPkt, now time.Time) [][]byte {
	s := &c.snd
	a := ip.ack
	if (a == 0 && len(ip.miss) == 0) || a >= s.next {
		return nil
	}
	var out [][]byte
	gap := s.resendGap()
	resendOp := func(op *outPkt) {
		s.loss(op.h.seq, false)
		op.sentAt = now
		op.resends++
		c.m.stats.retransmits.Add(1)
		out = append(out, c.innerLocked(op))
	}
	if a > s.acked {
		n := int(a - s.acked)
		newest := s.q[n-1]
		// Karn: no samples from retransmitted packets; nor from acks
		// that may have waited for a hole to be filled.
		if newest.resends == 0 && !s.holes && a > s.recover {
			s.sampleRTT(now.Sub(newest.sentAt))
		}
		clear(s.q[:n])
		s.q = s.q[n:]
		s.acked = a
		s.progressAt = now
		if s.cwnd < s.ssthresh {
			s.cwnd += float64(n)
		} else {
			s.cwnd += avoidGrowth * float64(n) / s.cwnd
		}
		s.cwnd = min(s.cwnd, maxWindow)
		c.wakeWriters()
		// A retransmission was acknowledged, and the receiver holds
		// nothing beyond it: what was sent before that retransmission
		// and is still unacknowledged was lost (NewReno partial ack).
		// Unless the ack came sooner after the retransmission than
		// any round trip took (RACK, RFC 8985): then it is the ack of
		// the original, which was only delayed (a queue on the path
		// outgrew the timeout), and so is what followed it;
		// resending that would double the queue and, the acks of the
		// originals acking each resent batch, go back over the whole
		// window again and again.
		if newest.resends > 0 && len(ip.miss) <= 1 && now.Sub(newest.sentAt) >= s.minRTT {
			k := 0
			for _, op := range s.q {
				if k == rtoBurst {
					break
				}
				if op.sentAt.Before(newest.sentAt) {
					resendOp(op)
					k++
				}
			}
		}
		if len(s.q) > 0 {
			c.armRTOLocked()
		}
	}
	if a == s.acked {
		s.holes = len(ip.miss) >= 2
	}
	if len(ip.miss) == 0 || a != s.acked {
		return out
	}
	resend := func(seq uint32) {
		if seq <= s.acked || seq >= s.next {
			return
		}
		op := s.q[seq-s.acked-1]
		op.missed = true
		if op.resends > 0 && now.Sub(op.sentAt) < gap {
			c.armRackLocked(op.sentAt.Add(gap).Sub(now)) // resent lately: give it a round trip
			return
		}
		resendOp(op)
	}
	if len(ip.miss) >= 2 {
		resend(a + 1) // telehash-js does not list the first gap
	}
	abs := uint64(a)
	for i, d := range ip.miss {
		abs += uint64(d)
		if abs > math.MaxUint32 {
			break
		}
		if i < len(ip.miss)-1 {
			resend(uint32(abs))
			continue
		}
		win := uint32(min(abs-uint64(a), maxWindow))
		if win > s.peerWin {
			c.wakeWriters()
		}
		s.peerWin = win
		if len(s.q) > 0 && s.q[0].h.seq > uint32(abs) {
			s.progressAt = now // alive, but its buffer is full
		}
	}
	return out
}
