package th

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/internal/backoff"
	"github.com/git-remote-daemon/git-remote-daemon/internal/thnode"
	"github.com/git-remote-daemon/git-remote-daemon/internal/transport"
	"github.com/git-remote-daemon/git-remote-daemon/watch"
)

// guard bounds every wait for something the watcher must do; it is no
// measure of speed.
const guard = 20 * time.Second

// fakeNode is a node whose connections (one per Watch) the test drives.
type fakeNode struct{ conns chan *conn }

type conn struct {
	ctx     context.Context
	updates chan watch.Update
	end     chan error
}

func (n *fakeNode) Watch(ctx context.Context, fn func(watch.Update) error) error {
	c := &conn{ctx: ctx, updates: make(chan watch.Update), end: make(chan error)}
	select {
	case n.conns <- c:
	case <-ctx.Done():
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case u := <-c.updates:
			if err := fn(u); err != nil {
				return err
			}
		case err := <-c.end:
			return err
		}
	}
}

func (n *fakeNode) next(t *testing.T) *conn {
	t.Helper()
	select {
	case c := <-n.conns:
		return c
	case <-time.After(guard):
		t.Fatal("the node was never watched")
		return nil
	}
}

func (c *conn) send(t *testing.T, u watch.Update) {
	t.Helper()
	select {
	case c.updates <- u:
	case <-time.After(guard):
		t.Fatal("update never taken")
	}
}

func (c *conn) fail(t *testing.T) {
	t.Helper()
	select {
	case c.end <- errors.New("gone"):
	case <-time.After(guard):
		t.Fatal("the connection never ended")
	}
}

// delivered is an update the multi watcher passed on, with the GitEnv
// asked while it was delivered.
type delivered struct {
	u   watch.Update
	env []string
}

// run watches fake nodes a and b as one remote.
func run(t *testing.T) (a, b *fakeNode, out chan delivered) {
	t.Helper()
	a, b = &fakeNode{conns: make(chan *conn, 10)}, &fakeNode{conns: make(chan *conn, 10)}
	m := &multi{members: []member{{w: a, name: "aaaa"}, {w: b, name: "bbbb"}},
		retry: backoff.Backoff{Min: time.Millisecond, Max: time.Millisecond}}
	var _ transport.Watcher = m
	out = make(chan delivered, 100)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- m.Watch(ctx, func(u watch.Update) error {
			out <- delivered{u: u, env: m.GitEnv()}
			return nil
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Watch: %v", err)
		}
	})
	return a, b, out
}

func next(t *testing.T, out chan delivered) delivered {
	t.Helper()
	select {
	case d := <-out:
		return d
	case <-time.After(guard):
		t.Fatal("no update")
		return delivered{}
	}
}

func refs(kv ...string) watch.Refs {
	r := watch.Refs{}
	for i := 0; i+1 < len(kv); i += 2 {
		r["refs/heads/"+kv[i]] = kv[i+1]
	}
	return r
}

func sha(n int) string { return fmt.Sprintf("%040x", n) }

func same(t *testing.T, got, want watch.Refs) {
	t.Helper()
	if d := watch.Diff(want, got); len(d) > 0 {
		t.Fatalf("refs %v, want %v", got, want)
	}
}

// A ref a node deleted while it was disconnected goes from the merged
// refs when it reconnects, unless another connected node has it.
func TestMultiDropsRefsDeletedWhileAway(t *testing.T) {
	a, b, out := run(t)
	ca := a.next(t)
	ca.send(t, watch.Update{First: true, Refs: refs("main", sha(1), "x", sha(2), "y", sha(3))})
	same(t, next(t, out).u.Refs, refs("main", sha(1), "x", sha(2), "y", sha(3)))
	cb := b.next(t)
	cb.send(t, watch.Update{First: true, Refs: refs("main", sha(1), "y", sha(3), "w", sha(9))})
	same(t, next(t, out).u.Refs, refs("main", sha(1), "x", sha(2), "y", sha(3), "w", sha(9)))

	ca.fail(t)
	ca = a.next(t) // reconnected: x and y were deleted meanwhile
	ca.send(t, watch.Update{First: true, Refs: refs("main", sha(1))})
	d := next(t, out)
	same(t, d.u.Refs, refs("main", sha(1), "y", sha(3), "w", sha(9))) // b still has y
	if len(d.u.Changes) != 1 || d.u.Changes[0].Ref != "refs/heads/x" || !d.u.Changes[0].Deleted() || d.u.First {
		t.Fatalf("changes %v, want x deleted", d.u.Changes)
	}
	if !slices.Equal(d.env, []string{thnode.NodeEnv + "=aaaa"}) {
		t.Fatalf("GitEnv %q during a's change", d.env)
	}

	cb.send(t, watch.Update{Refs: refs("main", sha(1), "w", sha(9)), Changes: []watch.Change{{Ref: "refs/heads/y", Old: sha(3)}}})
	d = next(t, out)
	same(t, d.u.Refs, refs("main", sha(1), "w", sha(9)))
}

// A ref last reported by one node stays as that node has it when
// another drops it; when the node it comes from drops it, it takes the
// value of a connected node that has it.
func TestMultiRefFromAnotherNode(t *testing.T) {
	a, b, out := run(t)
	ca := a.next(t)
	ca.send(t, watch.Update{First: true, Refs: refs("main", sha(1), "x", sha(2))})
	next(t, out)
	cb := b.next(t)
	cb.send(t, watch.Update{First: true, Refs: refs("main", sha(1), "x", sha(3))})
	d := next(t, out)
	same(t, d.u.Refs, refs("main", sha(1), "x", sha(3)))
	if !slices.Equal(d.env, []string{thnode.NodeEnv + "=bbbb"}) {
		t.Fatalf("GitEnv %q during b's change", d.env)
	}

	ca.send(t, watch.Update{Refs: refs("main", sha(1), "p", sha(6)), Changes: []watch.Change{
		{Ref: "refs/heads/x", Old: sha(2)}, {Ref: "refs/heads/p", New: sha(6)}}})
	d = next(t, out) // x stays as b has it
	same(t, d.u.Refs, refs("main", sha(1), "x", sha(3), "p", sha(6)))
	cb.send(t, watch.Update{Refs: refs("main", sha(1)), Changes: []watch.Change{{Ref: "refs/heads/x", Old: sha(3)}}})
	d = next(t, out)
	same(t, d.u.Refs, refs("main", sha(1), "p", sha(6)))
	if len(d.u.Changes) != 1 || !d.u.Changes[0].Deleted() {
		t.Fatalf("changes %v, want x deleted", d.u.Changes)
	}

	cb.send(t, watch.Update{Refs: refs("main", sha(1), "z", sha(4)), Changes: []watch.Change{{Ref: "refs/heads/z", New: sha(4)}}})
	next(t, out)
	ca.send(t, watch.Update{Refs: refs("main", sha(1), "p", sha(6), "z", sha(5)), Changes: []watch.Change{{Ref: "refs/heads/z", New: sha(5)}}})
	same(t, next(t, out).u.Refs, refs("main", sha(1), "p", sha(6), "z", sha(5)))
	ca.send(t, watch.Update{Refs: refs("main", sha(1), "p", sha(6)), Changes: []watch.Change{{Ref: "refs/heads/z", Old: sha(5)}}})
	same(t, next(t, out).u.Refs, refs("main", sha(1), "p", sha(6), "z", sha(4))) // b's z
}

// The first update names the node it came from; a node going away
// changes nothing; the remote is lost when every node is.
func TestMultiFirstAndLoss(t *testing.T) {
	a, b, out := run(t)
	cb := b.next(t)
	cb.send(t, watch.Update{First: true, Refs: refs("main", sha(1))})
	d := next(t, out)
	if !d.u.First || !slices.Equal(d.env, []string{thnode.NodeEnv + "=bbbb"}) {
		t.Fatalf("first update %+v with GitEnv %q, want first from b", d.u, d.env)
	}
	ca := a.next(t)
	ca.send(t, watch.Update{First: true, Refs: refs("main", sha(1))})
	ca.fail(t)
	a.next(t) // reconnecting
	cb.send(t, watch.Update{Refs: refs("main", sha(2)), Changes: []watch.Change{{Ref: "refs/heads/main", Old: sha(1), New: sha(2)}}})
	d = next(t, out)
	same(t, d.u.Refs, refs("main", sha(2)))
	select {
	case d := <-out:
		t.Fatalf("unexpected update %+v", d.u)
	default:
	}
}

// A node connecting while another keeps the remote connected signals
// Joined, also when it brings no change (a push that failed for want of
// it may go now); a push pins no node: git pushes to every URL.
func TestMultiJoined(t *testing.T) {
	a, b := &fakeNode{conns: make(chan *conn, 10)}, &fakeNode{conns: make(chan *conn, 10)}
	m := &multi{members: []member{{w: a, name: "aaaa"}, {w: b, name: "bbbb"}},
		retry: backoff.Backoff{Min: time.Millisecond, Max: time.Millisecond}}
	out := make(chan watch.Update, 100)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Watch(ctx, func(u watch.Update) error { out <- u; return nil }) }()
	defer func() { cancel(); <-done }()
	awaitJoin := func() {
		t.Helper()
		select {
		case <-m.Joined():
		case <-time.After(guard):
			t.Fatal("Joined never signalled")
		}
	}
	a.next(t).send(t, watch.Update{First: true, Refs: refs("main", sha(1))})
	<-out
	cb := b.next(t)
	cb.send(t, watch.Update{First: true, Refs: refs("main", sha(1))})
	awaitJoin()
	cb.fail(t)
	b.next(t).send(t, watch.Update{First: true, Refs: refs("main", sha(1))})
	awaitJoin()
	if env := m.PushEnv(); env != nil {
		t.Fatalf("PushEnv %q, want none", env)
	}
	select {
	case u := <-out:
		t.Fatalf("unexpected update %+v", u)
	default:
	}
}
