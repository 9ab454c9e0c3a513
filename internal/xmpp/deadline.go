package xmpp

import (
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// guardConn is the TCP connection under a session, with its deadlines
// in our hands once the session is up.
//
// mellium v0.22.0 bounds each Send by its context with a goroutine that,
// when the context ends, sets the write deadline to long ago and back.
// That goroutine may still be waiting when Send returns and the caller
// cancels its context (a select with both cases ready picks at random):
// it then cuts whatever write runs at that moment, here a later
// datagram, and over TLS a write that timed out breaks the connection
// for good. Measured: 10 MiB of datagrams failed with "i/o timeout"
// after about a second, every run. So after login the deadlines mellium
// sets are ignored, and Session.Send sets its own on the raw connection.
type guardConn struct {
	net.Conn
	r  io.Reader   // reads Conn, acknowledging at once (AckNow)
	up atomic.Bool // mellium's deadlines are ignored (from the start: see loginTo)

	mu       sync.Mutex
	inflight int // bounded writes running; the last one clears the deadline
}

func newGuardConn(raw net.Conn) *guardConn {
	return &guardConn{Conn: raw, r: AckNow(raw)}
}

func (g *guardConn) Read(p []byte) (int, error) {
	if g.r == nil {
		return g.Conn.Read(p)
	}
	return g.r.Read(p)
}

func (g *guardConn) SetDeadline(t time.Time) error {
	if g.up.Load() {
		return nil
	}
	return g.Conn.SetDeadline(t)
}

func (g *guardConn) SetWriteDeadline(t time.Time) error {
	if g.up.Load() {
		return nil
	}
	return g.Conn.SetWriteDeadline(t)
}

func (g *guardConn) SetReadDeadline(t time.Time) error {
	if g.up.Load() {
		return nil
	}
	return g.Conn.SetReadDeadline(t)
}

// bounded runs send with a write deadline on the raw connection of dl
// (moved forward by later bounded sends, cleared when none runs), so that
// a server that stopped reading fails the write instead of blocking it.
// Several may run at once: mellium serializes the writes themselves.
func (g *guardConn) bounded(dl time.Time, send func() error) error {
	g.mu.Lock()
	g.inflight++
	_ = g.Conn.SetWriteDeadline(dl)
	g.mu.Unlock()
	err := send()
	g.mu.Lock()
	if g.inflight--; g.inflight == 0 {
		_ = g.Conn.SetWriteDeadline(time.Time{})
	}
	g.mu.Unlock()
	return err
}

// deadline is now plus d, or ctx's deadline when it comes first.
func deadline(ctx context.Context, d time.Duration) time.Time {
	dl := time.Now().Add(d)
	if c, ok := ctx.Deadline(); ok && c.Before(dl) {
		return c
	}
	return dl
}
