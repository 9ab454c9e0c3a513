package xmpp

import (
	"context"
	"sync"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
)

// outboxLimit bounds the datagram bytes queued for the writer; Send
// waits (at most its timeout) while the queue is above it, as it waited
// for the TCP connection before datagrams were queued. It is above what
// telehash keeps in flight on a channel (a window of 1024 packets), so
// that a mesh's receive path, which sends acks and resends, is not held
// up by a queue of its own data (a 64 KiB limit made streams slower).
const outboxLimit = 2 << 20

// outbox holds the datagrams Send queued, per destination, for the
// session's writer. The writer sends at once what it finds: a lone
// datagram leaves without delay, and while a message is being written
// the next ones gather, to go together in one batch message (to nodes
// that take batches). Per-stanza work, ours and above all the server's,
// is what bounds the in-band path, so fewer, larger messages carry more.
type outbox struct {
	mu     sync.Mutex
	queues map[string]*destQueue
	order  []string // destinations with datagrams, served in turn
	bytes  int
	space  chan struct{} // closed (and replaced) when bytes go down
	kick   chan struct{} // wakes the writer
}

type destQueue struct {
	to    jid.JID
	batch bool // the node takes batches
	pkts  [][]byte
}

func newOutbox() *outbox {
	return &outbox{queues: map[string]*destQueue{}, space: make(chan struct{}), kick: make(chan struct{}, 1)}
}

// put queues a copy of b for to, waiting until dl (or ctx's end) for
// room.
func (o *outbox) put(ctx, life context.Context, dl time.Time, to jid.JID, batch bool, b []byte) error {
	var timer *time.Timer
	o.mu.Lock()
	for o.bytes > 0 && o.bytes+len(b) > outboxLimit {
		space := o.space
		o.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(time.Until(dl))
			defer timer.Stop()
		}
		select {
		case <-space:
		case <-timer.C:
			return context.DeadlineExceeded
		case <-ctx.Done():
			return ctx.Err()
		case <-life.Done():
			return ErrClosed
		}
		o.mu.Lock()
	}
	key := to.String()
	q := o.queues[key]
	if q == nil {
		q = &destQueue{to: to}
		o.queues[key] = q
	}
	if len(q.pkts) == 0 {
		o.order = append(o.order, key)
	}
	q.batch = batch
	q.pkts = append(q.pkts, append([]byte(nil), b...))
	o.bytes += len(b)
	o.mu.Unlock()
	select {
	case o.kick <- struct{}{}:
	default:
	}
	return nil
}

// take removes the next destination's datagrams: as many as one batch
// holds when it takes batches, else one. ok is false when none wait.
func (o *outbox) take() (to jid.JID, batch bool, pkts [][]byte, ok bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.order) == 0 {
		return jid.JID{}, false, nil, false
	}
	key := o.order[0]
	o.order = o.order[1:]
	q := o.queues[key]
	n, size := 1, 2+len(q.pkts[0])
	if q.batch {
		for n < len(q.pkts) && size+2+len(q.pkts[n]) <= maxBatchSend {
			size += 2 + len(q.pkts[n])
			n++
		}
	}
	pkts = q.pkts[:n:n]
	q.pkts = q.pkts[n:]
	if len(q.pkts) > 0 {
		o.order = append(o.order, key) // others' turn first
	} else {
		delete(o.queues, key)
	}
	o.bytes -= size - 2*n
	close(o.space)
	o.space = make(chan struct{})
	return q.to, q.batch, pkts, true
}

// clear drops everything queued (the connection ended) and returns how
// many datagrams that was.
func (o *outbox) clear() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, q := range o.queues {
		n += len(q.pkts)
	}
	clear(o.queues)
	o.order = nil
	o.bytes = 0
	close(o.space)
	o.space = make(chan struct{})
	return n
}

// write runs until the session closes: it sends what Send queued, one
// message per datagram to nodes that do not take batches, and one per
// batch to those that do (a single datagram in the one-datagram form,
// which every version reads).
func (s *Session) write() {
	defer s.wg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.out.kick:
		}
		for {
			to, _, pkts, ok := s.out.take()
			if !ok {
				break
			}
			s.writeMessage(to, pkts)
		}
	}
}

// writeMessage sends pkts to to in one message.
func (s *Session) writeMessage(to jid.JID, pkts [][]byte) {
	s.mu.Lock()
	cur, g := s.cur, s.guard
	s.mu.Unlock()
	if cur == nil {
		s.dropped.Add(uint64(len(pkts)))
		return
	}
	msg := stanza.Message{To: to, Type: stanza.NormalMessage}
	payload := datagramReader(pkts[0])
	if len(pkts) > 1 {
		payload = batchReader(pkts)
	}
	// The deadline is the raw connection's (see guardConn): mellium gets
	// a context that never ends.
	err := g.bounded(time.Now().Add(sendTimeout), func() error { return cur.Send(context.Background(), msg.Wrap(payload)) })
	if err != nil {
		// A stanza cut by the deadline leaves the stream broken: end the
		// connection, the session reconnects.
		_ = cur.Conn().Close()
		s.dropped.Add(uint64(len(pkts)))
		s.log.Info("xmpp: datagrams not sent, reconnecting", "to", to, "err", err)
		return
	}
	s.sent.Add(uint64(len(pkts)))
	s.messages.Add(1)
}
