package thnode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/telehash"
)

// registration is a daemon's registration with the host of its
// identity's node: the host serves the repository while it lasts.
type registration struct {
	c    *net.UnixConn
	mu   sync.Mutex // one CONFIG at a time
	ans  chan error
	addr string // the UDP address the host's node is bound to
}

// register asks the host of identity hn to serve the repository r and
// returns the link through it, done when the host goes away.
func register(ctx context.Context, hn telehash.Hashname, r Registration) (*hostLink, error) {
	c, br, addr, err := requestLocal(ctx, hn, localRequest{Verb: "REGISTER", Reg: r}.String())
	if err != nil {
		return nil, err
	}
	reg := &registration{c: c, ans: make(chan error), addr: addr}
	l := &hostLink{hn: hn, done: make(chan struct{}), reg: reg}
	go func() {
		defer close(l.done)
		defer c.Close()
		for {
			_, err := readAnswer(br)
			var re *remoteError
			switch {
			case err == nil:
			case errors.As(err, &re):
			default:
				return // the host went away (or we closed)
			}
			select {
			case reg.ans <- err:
			case <-time.After(5 * time.Second): // nobody asked: not a protocol we know
				return
			}
		}
	}()
	return l, nil
}

// remoteError is an ERR answer of the host.
type remoteError struct{ msg string }

func (e *remoteError) Error() string { return e.msg }

// reload tells the host that the repository's configuration changed.
func (l *hostLink) reload(ctx context.Context) error {
	reg := l.reg
	reg.mu.Lock()
	defer reg.mu.Unlock()
	if _, err := io.WriteString(reg.c, "CONFIG\n"); err != nil {
		return fmt.Errorf("telling the node's host: %w", err)
	}
	select {
	case err := <-reg.ans:
		return err
	case <-l.done:
		return errors.New("the node's host went away")
	case <-ctx.Done():
		return ctx.Err()
	}
}

// close ends the registration: the host stops serving the repository.
func (l *hostLink) close() {
	_ = l.reg.c.Close()
	<-l.done
}
