package thnode

import (
	"context"
	"io"
	"sync/atomic"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/telehash"
)

// Link is a process's way to its identity's node: the node itself in
// the process hosting it, or a connection to that process.
type Link interface {
	// Dial opens a stream to addr's service. With wait, an address with
	// only a hashname waits until that node links to us.
	Dial(ctx context.Context, addr Addr, service string, wait bool) (Stream, error)
	// Unlink forgets the session with hn, so that the next Dial
	// handshakes afresh.
	Unlink(hn telehash.Hashname)
	// Done is closed when the link ends (its node stopped, or its host
	// went away): its user moves to the next one.
	Done() <-chan struct{}
}

// Stream is a stream to a service of another node.
type Stream interface {
	io.ReadWriteCloser
	// Abort ends the stream at once.
	Abort(reason string)
}

// nodeLink is the link of the process hosting the node.
type nodeLink struct{ n *Node }

var _ Link = nodeLink{}

func (l nodeLink) Dial(ctx context.Context, addr Addr, service string, wait bool) (Stream, error) {
	if wait && !l.n.canReach(addr) && !l.n.waitLinked(ctx, addr.Hashname) {
		return nil, context.Cause(ctx)
	}
	if wait && addr.XMPP != "" && !l.n.waitXMPP(ctx, addr) {
		return nil, context.Cause(ctx)
	}
	return l.n.Dial(ctx, addr, service)
}

func (l nodeLink) Unlink(hn telehash.Hashname) { l.n.Mesh.Unlink(hn) }
func (l nodeLink) Done() <-chan struct{}       { return l.n.Done() }

// Link returns the node's own link.
func (n *Node) Link() Link { return nodeLink{n} }

// hostLink is the link of a daemon whose repository the host serves: it
// lasts while its registration does.
type hostLink struct {
	hn   telehash.Hashname
	done chan struct{}
	reg  *registration
}

var _ Link = (*hostLink)(nil)

func (l *hostLink) Dial(ctx context.Context, addr Addr, service string, wait bool) (Stream, error) {
	c, err := dialLocal(ctx, l.hn, addr, service, wait)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	return &hostStream{localConn: c, done: l.done}, nil
}

func (l *hostLink) Unlink(hn telehash.Hashname) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if c, _, _, err := requestLocal(ctx, l.hn, localRequest{Verb: "UNLINK", Peer: hn}.String()); err == nil {
		c.Close()
	}
}

func (l *hostLink) Done() <-chan struct{} { return l.done }

// hostGrace is how long a stream through the host that ends waits for
// the registration to end too: when the host goes away both end at
// once, and the stream's user should see the link done, to move to the
// next host rather than report a failure.
const hostGrace = time.Second

type hostStream struct {
	*localConn
	done   <-chan struct{}
	closed atomic.Bool
}

func (s *hostStream) Close() error {
	s.closed.Store(true)
	return s.localConn.Close()
}

func (s *hostStream) Abort(string) { _ = s.Close() }

func (s *hostStream) Read(p []byte) (int, error) {
	n, err := s.localConn.Read(p)
	if err != nil && n == 0 && !s.closed.Load() {
		t := time.NewTimer(hostGrace)
		defer t.Stop()
		select {
		case <-s.done:
		case <-t.C:
		}
	}
	return n, err
}
