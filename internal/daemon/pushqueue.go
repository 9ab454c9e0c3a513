package daemon

import "sync"

// pushQueue holds the pending push requests: any number of requests made
// before a push starts coalesce into that one push.
type pushQueue struct {
	mu      sync.Mutex
	pending map[string]bool // remote -> asked by a PUSH command
	wakers  map[string]func()
}

// request marks a push to remote as wanted and wakes its runner.
func (q *pushQueue) request(remote string) { q.add(remote, false) }

// ask is request for a PUSH command, which is answered whatever the
// outcome: a failure the same as the last is reported again.
func (q *pushQueue) ask(remote string) { q.add(remote, true) }

func (q *pushQueue) add(remote string, asked bool) {
	q.mu.Lock()
	if q.pending == nil {
		q.pending = map[string]bool{}
	}
	q.pending[remote] = q.pending[remote] || asked
	wake := q.wakers[remote]
	q.mu.Unlock()
	if wake != nil {
		wake()
	}
}

// take clears and returns the pending request of a remote, and whether
// a PUSH command asked for it.
func (q *pushQueue) take(remote string) (want, asked bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	asked, want = q.pending[remote]
	delete(q.pending, remote)
	return want, asked
}

func (q *pushQueue) drop(remote string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.pending, remote)
}

// register sets the function that wakes remote's runner (nil: none).
func (q *pushQueue) register(remote string, wake func()) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.wakers == nil {
		q.wakers = map[string]func(){}
	}
	if wake == nil {
		delete(q.wakers, remote)
	} else {
		q.wakers[remote] = wake
	}
}
