package th

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/internal/transport"
	"github.com/git-remote-daemon/git-remote-daemon/watch"
)

// NodeEnv names the node git-remote-th should fetch from, among the
// remote's URLs: the daemon sets it to the node whose change it acts on.
const NodeEnv = "GIT_REMOTE_TH_NODE"

// multi watches a remote that names several nodes. The remote is
// connected while any node is; its refs are the union of the nodes' refs,
// each ref as the node that last reported it has it; a change on any node
// is a change of the remote, and the fetch that follows goes to that node.
type multi struct {
	nodes []*watcher

	mu   sync.Mutex
	last int // index of the node that reported the last change
}

var _ transport.GitEnver = (*multi)(nil)

// nodeEvent is a node's update, or (Update nil) its loss with err.
type nodeEvent struct {
	i   int
	u   *watch.Update
	err error
}

func (m *multi) Watch(ctx context.Context, fn func(watch.Update) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events := make(chan nodeEvent)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for i, n := range m.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.follow(ctx, i, n, events)
		}()
	}
	up := map[int]bool{}
	failed := map[int]bool{}
	var merged watch.Refs
	var lastErr error
	for {
		var e nodeEvent
		select {
		case <-ctx.Done():
			return nil
		case e = <-events:
		}
		if e.u == nil {
			delete(up, e.i)
			failed[e.i], lastErr = true, e.err
			if len(up) == 0 && (merged != nil || len(failed) == len(m.nodes)) {
				return fmt.Errorf("no node of the remote answers; last: %w", lastErr)
			}
			continue
		}
		up[e.i] = true
		delete(failed, e.i)
		next := merged.Clone()
		if next == nil {
			next = watch.Refs{}
		}
		if e.u.First { // the node (re)connected: its refs are news
			for ref, sha := range e.u.Refs {
				next[ref] = sha
			}
		} else {
			for _, c := range e.u.Changes {
				if c.Deleted() {
					delete(next, c.Ref)
				} else {
					next[c.Ref] = c.New
				}
			}
		}
		var err error
		switch changes := watch.Diff(merged, next); {
		case merged == nil:
			err = fn(watch.Update{First: true, Refs: next.Clone()})
		case len(changes) > 0:
			m.mu.Lock()
			m.last = e.i
			m.mu.Unlock()
			err = fn(watch.Update{Refs: next.Clone(), Changes: changes})
		}
		merged = next
		if err != nil {
			return err
		}
	}
}

// follow keeps one node watched, reconnecting with backoff, and reports
// its updates and losses.
func (m *multi) follow(ctx context.Context, i int, n *watcher, events chan<- nodeEvent) {
	delay := time.Second
	for ctx.Err() == nil {
		started := time.Now()
		err := n.Watch(ctx, func(u watch.Update) error {
			select {
			case events <- nodeEvent{i: i, u: &u}:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			err = errors.New("watch ended")
		}
		select {
		case events <- nodeEvent{i: i, err: err}:
		case <-ctx.Done():
			return
		}
		if time.Since(started) > time.Minute {
			delay = time.Second
		}
		wait := delay/2 + rand.N(delay/2+1)
		delay = min(2*delay, 30*time.Second)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// GitEnv points git-remote-th at the node whose change is being fetched.
func (m *multi) GitEnv() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return []string{NodeEnv + "=" + string(m.nodes[m.last].addr.Hashname)}
}
