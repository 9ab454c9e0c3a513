package daemon

import (
	"context"
	"sync"

	"github.com/git-remote-daemon/git-remote-daemon/watch"
)

// localRefs lists the repository's own refs for the runners that derive
// what they know of their remote from its remote-tracking refs (a first
// connect without saved state). A thousand remotes connecting at once
// would each list every ref of the repository (a thousand listings of a
// thousand refs); instead a listing serves every runner that asked for
// it before it started, so at most one runs and one waits at a time. A
// runner never gets a listing started before it asked: what it derives
// is as fresh as its own listing would have been.
type localRefs struct {
	read func(ctx context.Context) (watch.Refs, error)

	mu      sync.Mutex
	running bool
	next    *refsCall // the listing after the running one, if anyone waits for it
}

type refsCall struct {
	done chan struct{}
	refs watch.Refs
	err  error
}

// get returns a listing started after get was called; its refs are
// shared: the caller must not modify them.
func (l *localRefs) get(ctx context.Context) (watch.Refs, error) {
	l.mu.Lock()
	if l.next == nil {
		l.next = &refsCall{done: make(chan struct{})}
	}
	c := l.next
	if !l.running {
		l.startLocked()
	}
	l.mu.Unlock()
	select {
	case <-c.done:
		return c.refs, c.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// startLocked runs the waiting listing, then the one queued meanwhile,
// if any. The listing does not end with one caller's context: the others
// wait for it too (it only lists files; git runs only for a reftable
// repository).
func (l *localRefs) startLocked() {
	c := l.next
	l.next, l.running = nil, true
	go func() {
		c.refs, c.err = l.read(context.Background())
		close(c.done)
		l.mu.Lock()
		l.running = false
		if l.next != nil {
			l.startLocked()
		}
		l.mu.Unlock()
	}()
}
