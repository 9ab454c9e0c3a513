package cmdline

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"syscall"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/internal/thnode"
	"github.com/git-remote-daemon/git-remote-daemon/telehash"
)

// joinNode is the node a join goes through: the node of a daemon
// lending the identity when one does, else a node of its own, which it
// lends to git-remote-th in turn when lend is set (so that `pair clone`
// fetches over the session the pairing opened).
type joinNode struct {
	id          *telehash.Identity
	linkTimeout time.Duration
	log         *slog.Logger
	lend        bool

	mu      sync.Mutex
	own     *thnode.Node
	started time.Time
}

func (j *joinNode) dial(ctx context.Context, addr thnode.Addr, service string) (io.ReadWriteCloser, error) {
	s, err := thnode.DialLocal(ctx, j.id.Hashname(), addr, service)
	switch {
	case err == nil:
		return s, nil
	case errors.Is(err, thnode.ErrUntrustedSocket):
		j.log.Warn("not using the daemon's node: " + err.Error() + "; linking alone")
	case errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.ECONNREFUSED):
	default:
		return nil, err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.own == nil {
		node, err := thnode.Start(context.WithoutCancel(ctx), thnode.Options{Identity: j.id, Listen: thnode.ListenFor(addr),
			LinkTimeout: j.linkTimeout, Logger: j.log,
			Allow: func(h telehash.Hashname) bool { return h == addr.Hashname }})
		if err != nil {
			return nil, err
		}
		if j.lend {
			if err := node.ServeLocal(); err != nil {
				j.log.Warn("cannot lend the pairing node to git-remote-th", "err", err)
			}
		}
		j.own, j.started = node, time.Now()
	}
	return j.own.Dial(ctx, addr, service)
}

// sameSecond is how long after its start a node of ours must live: a
// node of the same identity started sooner after it closes would
// handshake with a timestamp ("at", in seconds) no higher than this
// one's session, which the other side, if it has let that session go,
// takes for a replay from another port and does not answer.
const sameSecond = 2 * time.Second

// close stops the node of its own, if it started one, no sooner than
// sameSecond after its start.
func (j *joinNode) close() {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.own == nil {
		return
	}
	time.Sleep(time.Until(j.started.Add(sameSecond)))
	_ = j.own.Close()
	j.own = nil
}
