package telehash

// Acks cumulated over a read batch. A receiver acks every ackEvery
// in-order packets; when a batched read (recvmmsg, GRO) hands it dozens of
// packets at once, those acks would all leave within microseconds of each
// other, each one a sealed datagram and a system call on both sides. So
// the in-order ones are deferred to the end of the batch, where one ack
// per channel covers them all. Acks that tell of a gap, an end or a
// duplicate still go at once, and the channel's ack timer (ackDelay)
// stays armed as the fallback for packets not handled by the read loop.

// deferAck queues c's ack for the end of the current read batch.
func (m *Mesh) deferAck(c *Channel) {
	m.ackMu.Lock()
	if !c.ackQd {
		c.ackQd = true
		m.ackq = append(m.ackq, c)
		m.ackWait.Store(true)
	}
	m.ackMu.Unlock()
}

// flushAcks sends the acks deferred by deferAck.
func (m *Mesh) flushAcks() {
	if !m.ackWait.Load() {
		return
	}
	m.ackMu.Lock()
	q := m.ackq
	m.ackq = nil
	m.ackWait.Store(false)
	for _, c := range q {
		c.ackQd = false
	}
	m.ackMu.Unlock()
	for _, c := range q {
		c.mu.Lock()
		var ack []byte
		if !c.closed && c.err == nil && c.rcv.unacked > 0 {
			ack = c.pureAckLocked()
		}
		c.mu.Unlock()
		if ack != nil {
			c.p.sendRaw(ack)
		}
	}
}
