package telehash

import (
	"context"
	"time"
)

// armRTOLocked starts the retransmission timer if it is not running.
func (c *Channel) armRTOLocked() {
	s := &c.snd
	if s.armed {
		return
	}
	d := s.rto
	if len(s.q) > 0 {
		d = time.Until(s.q[0].sentAt.Add(s.rto))
	}
	d = max(d, time.Millisecond)
	s.armed = true
	if s.timer == nil {
		s.timer = time.AfterFunc(d, c.onRTO)
	} else {
		s.timer.Reset(d)
	}
}

// onRTO retransmits the oldest unacknowledged packets, probes a closed
// window, or fails the channel after ChannelTimeout without progress.
func (c *Channel) onRTO() {
	c.mu.Lock()
	s := &c.snd
	s.armed = false
	if c.closed {
		c.mu.Unlock()
		return
	}
	now := time.Now()
	if len(s.q) == 0 {
		if s.next-1-s.acked >= min(uint32(s.cwnd), s.peerWin) {
			s.probe = true
			c.wakeWriters()
		}
		c.mu.Unlock()
		return
	}
	if now.Sub(s.progressAt) > c.m.opts.ChannelTimeout {
		c.m.log.Debug("telehash: channel timeout", "peer", c.p.hn, "c", c.id, "acked", s.acked, "next", s.next,
			"q0sent", now.Sub(s.q[0].sentAt), "q0resends", s.q[0].resends, "rto", s.rto, "srtt", s.srtt,
			"cwnd", s.cwnd, "peerWin", s.peerWin, "inDone", c.rcv.inDone, "nbuf", c.rcv.nbuf, "unread", c.rcv.unread())
		c.mu.Unlock()
		c.fail(ErrChannelTimeout, "timeout")
		return
	}
	if now.Before(s.q[0].sentAt.Add(s.rto)) {
		c.armRTOLocked()
		c.mu.Unlock()
		return
	}
	var out [][]byte
	for i, op := range s.q {
		if i == rtoBurst || now.Sub(op.sentAt) < s.rto {
			break
		}
		op.sentAt = now
		op.resends++
		out = append(out, c.innerLocked(op))
	}
	c.m.stats.retransmits.Add(uint64(len(out)))
	c.m.stats.timeouts.Add(1)
	s.loss(s.q[0].h.seq, true)
	s.rto = min(2*s.rto, maxRTO)
	c.armRTOLocked()
	c.mu.Unlock()
	for _, b := range out {
		c.p.sendRaw(b)
	}
	c.p.probePaths(now)
}

// armRackLocked starts the timer that resends packets reported missing
// whose retransmission got no ack within a round trip, so that a lost
// retransmission does not wait for the retransmission timeout when no
// further miss report comes (the window is full).
func (c *Channel) armRackLocked(d time.Duration) {
	s := &c.snd
	if s.rackArmed {
		return
	}
	s.rackArmed = true
	d = max(d, time.Millisecond)
	if s.rack == nil {
		s.rack = time.AfterFunc(d, c.onRack)
	} else {
		s.rack.Reset(d)
	}
}

func (c *Channel) onRack() {
	c.mu.Lock()
	s := &c.snd
	s.rackArmed = false
	if c.closed {
		c.mu.Unlock()
		return
	}
	now := time.Now()
	gap := s.resendGap()
	var out [][]byte
	var next time.Duration
	for _, op := range s.q {
		if !op.missed {
			continue
		}
		if wait := op.sentAt.Add(gap).Sub(now); wait > 0 {
			if next == 0 || wait < next {
				next = wait
			}
			continue
		}
		if len(out) == rtoBurst {
			next = gap
			break
		}
		op.sentAt = now
		op.resends++
		out = append(out, c.innerLocked(op))
	}
	c.m.stats.retransmits.Add(uint64(len(out)))
	if next > 0 {
		c.armRackLocked(next)
	}
	c.mu.Unlock()
	for _, b := range out {
		c.p.sendRaw(b)
	}
}

// onAckTimer sends a delayed ack.
func (c *Channel) onAckTimer() {
	c.mu.Lock()
	c.rcv.timerOn = false
	if c.err != nil || c.rcv.unacked == 0 {
		c.mu.Unlock()
		return
	}
	b := c.pureAckLocked()
	c.mu.Unlock()
	c.p.sendRaw(b)
}

// windowUpdateLocked returns an ack when reading opened the window enough
// that the sender should hear of it.
func (c *Channel) windowUpdateLocked() []byte {
	r := &c.rcv
	if !r.any || r.edge()-r.lastEdge < max(r.cap/4, 1) {
		return nil
	}
	return c.pureAckLocked()
}

// Flush waits until every packet sent on a reliable channel was
// acknowledged, the channel failed, or ctx ends.
func (c *Channel) Flush(ctx context.Context) error {
	if !c.reliable {
		return nil
	}
	c.mu.Lock()
	for {
		if c.err != nil {
			err := c.err
			c.mu.Unlock()
			return err
		}
		if len(c.snd.q) == 0 {
			c.mu.Unlock()
			return nil
		}
		w := c.writersWake()
		c.mu.Unlock()
		select {
		case <-w:
		case <-ctx.Done():
			return ctx.Err()
		}
		c.mu.Lock()
	}
}
