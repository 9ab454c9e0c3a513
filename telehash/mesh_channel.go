package telehash

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"
)

// maxUnreliableQueue bounds the received, unread packets of an
// unreliable channel; more are dropped.
const maxUnreliableQueue = 256

// Channel is one channel with a peer (spec: e3x/channels.md), unreliable
// or reliable (e3x/reliable.md). Content is sent with Send and received
// in order with Receive; Stream adapts a reliable channel to an
// io.ReadWriteCloser. It is safe for concurrent use.
type Channel struct {
	m        *Mesh
	p        *peer
	id       uint32
	typ      string
	reliable bool
	out      bool
	open     *ChannelPacket

	mu       sync.Mutex
	err      error // terminal error (nil after a clean finish)
	closed   bool  // finished or failed: no more protocol activity
	done     chan struct{}
	rwake    chan struct{} // closed and replaced when readers may progress
	swake    chan struct{} // closed and replaced when writers may progress
	rwaited  bool          // someone took rwake to wait on it (lazy wake)
	swaited  bool          // someone took swake to wait on it
	ackQd    bool          // queued on the mesh's batch-end acks (m.ackMu)
	endSent  bool
	rcvEnded bool // the peer's end was received in order
	eof      bool // the app consumed the peer's end
	readShut bool // Close was called: incoming content is discarded
	uq       []*innerPkt

	snd sndState
	rcv rcvState
}

func newChannel(p *peer, id uint32, typ string, reliable, out bool, open *ChannelPacket) *Channel {
	c := &Channel{m: p.m, p: p, id: id, typ: typ, reliable: reliable, out: out, open: open,
		done: make(chan struct{}), rwake: make(chan struct{}), swake: make(chan struct{})}
	if reliable {
		c.snd.init()
		c.rcv.init(uint32(p.m.opts.Window))
	}
	return c
}

// ID returns the channel id.
func (c *Channel) ID() uint32 { return c.id }

// Type returns the channel type.
func (c *Channel) Type() string { return c.typ }

// Peer returns the remote hashname.
func (c *Channel) Peer() Hashname { return c.p.hn }

// Reliable reports whether the channel is reliable.
func (c *Channel) Reliable() bool { return c.reliable }

// OpenPacket returns the open packet (sent or received). On an accepted
// channel its Body and Extra are the request; it is not returned by
// Receive.
func (c *Channel) OpenPacket() *ChannelPacket { return c.open }

// Done is closed when the channel finished (end sent and received, and
// everything sent acknowledged) or failed.
func (c *Channel) Done() <-chan struct{} { return c.done }

// Err returns the error that failed the channel, or nil.
func (c *Channel) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// wakeReaders and wakeWriters (c.mu held) wake those waiting on rwake or
// swake; the channel is only closed and replaced when someone took it
// (readersWake, writersWake), not for every packet.
func (c *Channel) wakeReaders() {
	if c.rwaited {
		close(c.rwake)
		c.rwake, c.rwaited = make(chan struct{}), false
	}
}

func (c *Channel) wakeWriters() {
	if c.swaited {
		close(c.swake)
		c.swake, c.swaited = make(chan struct{}), false
	}
}

// readersWake and writersWake (c.mu held) return the channel to wait on
// until readers or writers may progress.
func (c *Channel) readersWake() <-chan struct{} { c.rwaited = true; return c.rwake }
func (c *Channel) writersWake() <-chan struct{} { c.swaited = true; return c.swake }

// OpenChannel opens a channel of type typ to a linked peer (re-linking
// first if the link is down). open supplies the open packet's Extra, Body
// and End (nil for none). A reliable open is retransmitted until
// acknowledged; errors from the peer (such as "unknown type") surface on
// Receive, Send and Err.
func (m *Mesh) OpenChannel(ctx context.Context, peer Hashname, typ string, reliable bool, open *ChannelPacket) (*Channel, error) {
	p := m.lookup(peer)
	if p == nil {
		return nil, fmt.Errorf("%w: %s", ErrUnknownPeer, peer)
	}
	if typ == "" {
		return nil, fmt.Errorf("%w: channel type required", ErrMalformed)
	}
	op := &ChannelPacket{}
	if open != nil {
		*op = *open
	}
	if err := validExtra(op.Extra); err != nil {
		return nil, err
	}
	if err := p.ensureUp(ctx); err != nil {
		return nil, err
	}
	id, err := p.x.NextChannelID()
	if err != nil {
		return nil, err
	}
	op.C, op.Type, op.Seq = id, typ, 0
	if reliable {
		op.Seq = 1
	}
	c := newChannel(p, id, typ, reliable, true, op)
	p.mu.Lock()
	if len(p.chans) >= m.opts.MaxChannels {
		p.mu.Unlock()
		return nil, fmt.Errorf("%w: %d open channels to %s", ErrExhausted, len(p.chans), peer)
	}
	p.chans[id] = c
	p.mu.Unlock()
	m.stats.channelsOpened.Add(1)
	h := outHead{typ: typ, end: op.End, extra: op.Extra}
	if err := c.send(ctx, h, op.Body); err != nil {
		c.fail(err, "")
		return nil, err
	}
	return c, nil
}

// receiveChannel dispatches a decoded channel packet of this peer,
// received from addr. A packet that may be a replay (a duplicate, an
// open of a channel id already used, content of an unreliable channel)
// has no effect beyond its own channel and does not move the path; a
// fresh one (new content or a new acknowledgement on a reliable channel,
// a new channel) makes from the peer's path (spec: e3x/channels.md).
func (p *peer) receiveChannel(ip *innerPkt, from pathAddr) {
	p.mu.Lock()
	c := p.chans[ip.c]
	p.mu.Unlock()
	if c != nil {
		c.receiveFrom(ip, func() { p.received(from) })
		return
	}
	if ip.typ == "" || ip.err != "" || p.x.IsLocalChannel(ip.c) {
		p.m.stats.dropChannel.Add(1)
		return
	}
	h := p.m.handler(ip.typ)
	p.mu.Lock()
	if p.chans[ip.c] != nil || !p.remoteIDs.fresh(ip.c) {
		p.mu.Unlock()
		p.m.stats.dropChannel.Add(1)
		return
	}
	// Refused or not, the id is used: a replay is not answered again.
	p.remoteIDs.accept(ip.c)
	var bounce string
	switch {
	case h == nil:
		bounce = "unknown type"
	case len(p.chans) >= p.m.opts.MaxChannels:
		bounce = "too many channels"
	default:
		c = newChannel(p, ip.c, ip.typ, ip.seq == 1, false, ip.channelPacket())
		p.chans[ip.c] = c
	}
	p.mu.Unlock()
	p.received(from)
	if bounce != "" {
		p.m.log.Debug("telehash: refusing channel", "peer", p.hn, "type", ip.typ, "err", bounce)
		p.sendInner(&outHead{c: ip.c, err: bounce}, nil)
		return
	}
	p.m.stats.channelsAccepted.Add(1)
	c.accept(ip)
	go h(c)
}

// sendInner encrypts and sends one inner packet to the peer's path.
func (p *peer) sendInner(h *outHead, body []byte) error {
	inner, err := appendInner(make([]byte, 0, 64+len(body)), h, body)
	if err != nil {
		return err
	}
	return p.sendRaw(inner)
}

// sendRaw encrypts and sends an encoded inner packet.
func (p *peer) sendRaw(inner []byte) error {
	if len(inner) > maxInnerSize {
		return fmt.Errorf("%w: channel packet of %d bytes exceeds %d on the wire", ErrTooLarge,
			len(inner)+channelOverhead, MaxDatagramSize)
	}
	d, err := p.x.sealChannelDatagram(p.m.opts.Rand, inner)
	putInner(inner)
	if err != nil {
		return err
	}
	return p.m.send(d, p.path())
}

// Send sends a content packet: p's Extra, Body and End are used, the
// rest is managed by the channel. On a reliable channel it blocks while
// the send window is full. After End nothing more may be sent.
func (c *Channel) Send(ctx context.Context, p *ChannelPacket) error {
	if err := validExtra(p.Extra); err != nil {
		return err
	}
	return c.send(ctx, outHead{end: p.End, extra: p.Extra}, p.Body)
}

// send sends one content packet (the open one when h.typ is set).
func (c *Channel) send(ctx context.Context, h outHead, body []byte) error {
	h.c = c.id
	if c.reliable {
		return c.sendReliable(ctx, h, body)
	}
	c.mu.Lock()
	if c.err != nil || c.closed || c.endSent {
		err := c.errLocked()
		c.mu.Unlock()
		return err
	}
	if h.end {
		c.endSent = true
	}
	fin := c.endSent && c.rcvEnded
	c.mu.Unlock()
	err := c.p.sendInner(&h, body)
	if fin {
		c.finish()
	}
	return err
}

// errLocked returns the error for an operation on a channel that cannot
// send.
func (c *Channel) errLocked() error {
	if c.err != nil {
		return c.err
	}
	return ErrChannelClosed
}

// Receive returns the next content packet: in order on a reliable
// channel. The peer's end packet is returned with End set, then io.EOF.
// It fails with the channel's error after an err or a timeout.
func (c *Channel) Receive(ctx context.Context) (*ChannelPacket, error) {
	ip, err := c.recv(ctx)
	if err != nil {
		return nil, err
	}
	return ip.channelPacket(), nil
}

// recv pops the next received packet.
func (c *Channel) recv(ctx context.Context) (*innerPkt, error) {
	c.mu.Lock()
	for {
		if c.err != nil {
			err := c.err
			c.mu.Unlock()
			return nil, err
		}
		var ip *innerPkt
		if c.reliable {
			ip = c.rcv.pop()
		} else if len(c.uq) > 0 {
			ip = c.uq[0]
			c.uq[0] = nil
			c.uq = c.uq[1:]
		}
		if ip != nil {
			if ip.end {
				c.eof = true
			}
			var ack []byte
			if c.reliable {
				ack = c.windowUpdateLocked()
			}
			c.mu.Unlock()
			if ack != nil {
				c.p.sendRaw(ack)
			}
			return ip, nil
		}
		if c.eof || c.readShut {
			c.mu.Unlock()
			return nil, io.EOF
		}
		w := c.readersWake()
		c.mu.Unlock()
		select {
		case <-w:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		c.mu.Lock()
	}
}

// receive handles a packet for this channel (mesh read goroutine).
func (c *Channel) receive(ip *innerPkt) { c.receiveFrom(ip, nil) }

// receiveFrom is receive; fresh, if not nil, is called when the packet
// is certainly not a replay (new content or acknowledgement on a
// reliable channel), before anything is sent in answer.
func (c *Channel) receiveFrom(ip *innerPkt, fresh func()) {
	if ip.err != "" {
		c.fail(&ChannelError{Msg: ip.err}, "")
		return
	}
	if c.reliable {
		c.receiveReliable(ip, fresh)
		return
	}
	c.mu.Lock()
	if c.closed || c.rcvEnded {
		c.mu.Unlock()
		return
	}
	if ip.end {
		c.rcvEnded = true
	}
	if !c.readShut {
		if len(c.uq) >= maxUnreliableQueue {
			c.m.stats.unreliableQueueDrops.Add(1)
		} else {
			c.uq = append(c.uq, ip)
		}
	}
	c.wakeReaders()
	fin := c.endSent && c.rcvEnded
	c.mu.Unlock()
	if fin {
		c.finish()
	}
}

// CloseWrite sends the end of this side's content (spec: "end":true).
func (c *Channel) CloseWrite(ctx context.Context) error {
	c.mu.Lock()
	sent := c.endSent && c.err == nil
	c.mu.Unlock()
	if sent {
		return nil
	}
	return c.send(ctx, outHead{end: true}, nil)
}

// Close ends the channel: it sends end if not sent yet, discards further
// incoming content, and on a reliable channel waits (up to the channel
// timeout) until everything sent was acknowledged. A peer that does not
// end its side within the channel timeout gets err "closed".
func (c *Channel) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), c.m.opts.ChannelTimeout)
	defer cancel()
	c.mu.Lock()
	if c.closed {
		err := c.err
		c.mu.Unlock()
		return err
	}
	c.readShut = true
	c.uq = nil
	if c.reliable {
		c.rcv.discard()
	}
	c.wakeReaders()
	c.mu.Unlock()
	if err := c.CloseWrite(ctx); err != nil {
		return err
	}
	if !c.reliable {
		c.finish()
		return nil
	}
	if err := c.Flush(ctx); err != nil {
		return err
	}
	time.AfterFunc(c.m.opts.ChannelTimeout, func() { c.fail(ErrChannelClosed, "closed") })
	return nil
}

// Abort fails the channel at once and sends err reason to the peer.
func (c *Channel) Abort(reason string) {
	if reason == "" {
		reason = "aborted"
	}
	c.fail(fmt.Errorf("%w: aborted: %s", ErrChannelClosed, reason), reason)
}

// fail ends the channel with err; a non-empty wire error is sent to the
// peer as "err" (which closes at once and drops buffered content).
func (c *Channel) fail(err error, wire string) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.err = err
	c.uq = nil
	if c.reliable {
		c.rcv.discard()
		c.snd.q = nil
		c.snd.stopTimers()
		c.rcv.stopTimers()
	}
	close(c.done)
	c.wakeReaders()
	c.wakeWriters()
	c.mu.Unlock()
	c.p.forgetChannel(c)
	if wire != "" {
		c.p.sendInner(&outHead{c: c.id, err: wire}, nil)
	}
}

// finish ends a channel cleanly: it stays known for a while to answer
// retransmissions, then is forgotten.
func (c *Channel) finish() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	close(c.done)
	c.wakeReaders()
	c.wakeWriters()
	c.mu.Unlock()
	time.AfterFunc(min(c.m.opts.ChannelTimeout, 5*time.Second), func() {
		c.mu.Lock()
		if c.reliable {
			c.snd.stopTimers()
			c.rcv.stopTimers()
		}
		c.mu.Unlock()
		c.p.forgetChannel(c)
	})
}

// forgetChannel removes c from the peer; its id stays used (remoteIDs).
func (p *peer) forgetChannel(c *Channel) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.chans[c.id] == c {
		delete(p.chans, c.id)
	}
}
