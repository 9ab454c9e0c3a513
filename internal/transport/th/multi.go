package th

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/internal/backoff"
	"github.com/git-remote-daemon/git-remote-daemon/internal/thnode"
	"github.com/git-remote-daemon/git-remote-daemon/internal/transport"
	"github.com/git-remote-daemon/git-remote-daemon/watch"
)

// multi watches a remote that names several nodes. The remote is
// connected while any node is. Its refs are those of its nodes merged:
// each ref as the node that last reported it has it. A ref goes when a
// node drops it (deletes it, or reconnects without it: deleted while it
// was away) and no other connected node has it; if one has, the ref
// takes that node's value. A node going away takes nothing with it: the
// remote may only be out of reach of one of its replicas. A change on any node is a change of the
// remote, and GitEnv, asked while the change is delivered, names that
// node, so the fetch that follows goes there (see transport.GitEnver).
type multi struct {
	nodes []*watcher
	// members, when set, replaces nodes: tests watch fake nodes.
	members []member
	// retry is the reconnect delay of each node (zero: 1s to 30s, reset
	// after a minute up).
	retry backoff.Backoff

	mu     sync.Mutex
	last   string        // hashname of the node whose update is delivered
	joined chan struct{} // see Joined
}

// member is one node of a multi: its watcher and hashname.
type member struct {
	w    transport.Watcher
	name string
}

var (
	_ transport.GitEnver  = (*multi)(nil)
	_ transport.PushEnver = (*multi)(nil)
	_ transport.Joiner    = (*multi)(nil)
)

// Joined is signalled when a node connects (again) while another keeps
// the remote connected: a push that failed for want of it may go now.
func (m *multi) Joined() <-chan struct{} { return m.joinedChan() }

func (m *multi) joinedChan() chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.joined == nil {
		m.joined = make(chan struct{}, 1)
	}
	return m.joined
}

func (m *multi) join() {
	ch := m.joinedChan()
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (m *multi) each() []member {
	if m.members != nil {
		return m.members
	}
	out := make([]member, len(m.nodes))
	for i, n := range m.nodes {
		out[i] = member{w: n, name: string(n.addr.Hashname)}
	}
	return out
}

// nodeEvent is a node's update, or (Update nil) its loss with err.
type nodeEvent struct {
	i   int
	u   *watch.Update
	err error
}

// merger keeps each node's refs and the remote's merged refs.
type merger struct {
	nodes  map[int]watch.Refs // the refs of each node, as last known
	up     map[int]bool       // the nodes connected now
	merged watch.Refs         // nil until a node connected
	from   map[string]int     // the node each merged ref comes from
}

// lose records that a node went away; the merged refs stay.
func (g *merger) lose(i int) { delete(g.up, i) }

// apply takes in a node's update and returns the new merged refs.
func (g *merger) apply(i int, u watch.Update) watch.Refs {
	if g.nodes == nil {
		g.nodes, g.up, g.from = map[int]watch.Refs{}, map[int]bool{}, map[string]int{}
	}
	g.up[i] = true
	next := g.merged.Clone()
	if next == nil {
		next = watch.Refs{}
	}
	mine := g.nodes[i].Clone()
	var gone []string // refs the node no longer has
	if u.First {      // (re)connected: its refs are news
		for ref := range mine {
			if _, ok := u.Refs[ref]; !ok {
				gone = append(gone, ref) // deleted while it was away
			}
		}
		mine = u.Refs.Clone()
		for ref, sha := range mine {
			next[ref], g.from[ref] = sha, i
		}
	} else {
		if mine == nil {
			mine = watch.Refs{}
		}
		for _, c := range u.Changes {
			if c.Deleted() {
				delete(mine, c.Ref)
				gone = append(gone, c.Ref)
			} else {
				mine[c.Ref] = c.New
				next[c.Ref], g.from[c.Ref] = c.New, i
			}
		}
	}
	g.nodes[i] = mine
	for _, ref := range gone {
		if from, ok := g.from[ref]; ok && from != i && g.up[from] && g.nodes[from][ref] != "" {
			continue // it comes from another connected node, which has it
		}
		delete(next, ref)
		delete(g.from, ref)
		for _, j := range slices.Sorted(maps.Keys(g.nodes)) { // a connected node has it: its value
			if sha, ok := g.nodes[j][ref]; ok && j != i && g.up[j] {
				next[ref], g.from[ref] = sha, j
				break
			}
		}
	}
	g.merged = next
	return next
}

func (m *multi) Watch(ctx context.Context, fn func(watch.Update) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	nodes := m.each()
	events := make(chan nodeEvent)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			follow(ctx, i, n.w, m.retryDelay(), events)
		}()
	}
	up := map[int]bool{}
	failed := map[int]bool{}
	var g merger
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
			g.lose(e.i)
			failed[e.i], lastErr = true, e.err
			if len(up) == 0 && (g.merged != nil || len(failed) == len(nodes)) {
				return fmt.Errorf("no node of the remote answers; last: %w", lastErr)
			}
			continue
		}
		joined := e.u.First && g.merged != nil // the remote was connected already
		up[e.i] = true
		delete(failed, e.i)
		old := g.merged
		next := g.apply(e.i, *e.u)
		var u *watch.Update
		switch changes := watch.Diff(old, next); {
		case old == nil:
			u = &watch.Update{First: true, Refs: next.Clone()}
		case len(changes) > 0:
			u = &watch.Update{Refs: next.Clone(), Changes: changes}
		}
		if u == nil {
			if joined {
				m.join()
			}
			continue
		}
		m.mu.Lock()
		m.last = nodes[e.i].name
		m.mu.Unlock()
		if err := fn(*u); err != nil {
			return err
		}
		if joined { // after its changes are handled
			m.join()
		}
	}
}

func (m *multi) retryDelay() backoff.Backoff {
	if m.retry.Min > 0 {
		return m.retry
	}
	return backoff.Backoff{Min: time.Second, Max: 30 * time.Second, StableAfter: time.Minute}
}

// follow keeps one node watched, reconnecting with backoff, and reports
// its updates and losses.
func follow(ctx context.Context, i int, w transport.Watcher, b backoff.Backoff, events chan<- nodeEvent) {
	for ctx.Err() == nil {
		started := time.Now()
		err := w.Watch(ctx, func(u watch.Update) error {
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
		b.Done(time.Since(started))
		if !backoff.Sleep(ctx, b.Next()) {
			return
		}
	}
}

// GitEnv points git-remote-th at the node whose change is being
// delivered (called during the update: see transport.GitEnver).
func (m *multi) GitEnv() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.last == "" {
		return nil
	}
	return []string{thnode.NodeEnv + "=" + m.last}
}

// PushEnv pins no node: git pushes to every URL of the remote, each to
// its own node.
func (m *multi) PushEnv() []string { return nil }
