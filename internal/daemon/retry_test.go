package daemon

import (
	"strings"
	"testing"

	"github.com/git-remote-daemon/git-remote-daemon/protocol"
	"github.com/git-remote-daemon/git-remote-daemon/watch"
)

// retryHarness runs a daemon fetching from a remote whose repository is
// missing (every fetch fails) until the test makes it with makeUp.
func retryHarness(t *testing.T) (h *harness, s *session, refs watch.Refs, makeUp func()) {
	t.Helper()
	src := t.TempDir()
	git(t, src, "init", "-q", "-b", "main")
	c := commit(t, src, "one")
	up := t.TempDir() + "/up.git"
	h = newHarness(t, "remote.origin.url "+up, "remote.origin.fetch +refs/heads/*:refs/remotes/origin/*")
	s = h.dialer.next(t, "origin")
	refs = watch.Refs{"refs/heads/main": c}
	s.first(t, refs)
	h.out.await(t, 1, "ERROR origin fetch failed: .*")
	return h, s, refs, func() { git(t, "", "clone", "-q", "--bare", src, up) }
}

// lastError returns what `status` shows as the remote's last error.
func lastError(h *harness, remote string) string {
	for _, rs := range h.d.book.snapshot().Remotes {
		if rs.Name == remote {
			return rs.LastError
		}
	}
	return ""
}

// A failed fetch is tried again after growing delays, its ERROR emitted
// once, shown by status until it succeeds; it succeeds by itself once
// the cause is gone.
func TestFailedFetchRetried(t *testing.T) {
	h, _, refs, makeUp := retryHarness(t)
	if e := lastError(h, "origin"); !strings.HasPrefix(e, "fetch failed: ") {
		t.Fatalf("status shows last error %q", e)
	}
	d := h.clock.nextWait(t)
	within(t, d, 1e9)
	h.clock.Advance(d)
	d = h.clock.nextWait(t) // failed again: a longer wait, no new ERROR
	within(t, d, 2e9)
	h.out.exactly(t, 1, "ERROR .*")
	makeUp()
	h.clock.Advance(d)
	h.out.await(t, 1, "STATUS origin fetched")
	awaitKnown(t, h, "origin", refs)
	h.do(protocol.Pause{})
	h.out.exactly(t, 1, "ERROR .*")
	h.out.exactly(t, 1, "CHANGED .*")
	if got := refsOf(t, h.dir+"/.git")["refs/remotes/origin/main"]; got != refs["refs/heads/main"] {
		t.Fatalf("origin/main is %q", got)
	}
}

// RESUME and RELOAD retry a failed fetch at once.
func TestFailedFetchRetriedNow(t *testing.T) {
	for _, cmd := range []protocol.Message{protocol.Resume{}, protocol.Reload{}} {
		t.Run(cmd.Verb(), func(t *testing.T) {
			h, _, _, makeUp := retryHarness(t)
			h.clock.nextWait(t)
			makeUp()
			h.do(cmd) // the clock stands still: only the command retries
			h.out.await(t, 1, "STATUS origin fetched")
			h.out.exactly(t, 1, "ERROR .*")
		})
	}
}

// A failed push is tried again until it succeeds.
func TestFailedPushRetried(t *testing.T) {
	up := t.TempDir() + "/up.git"
	h := newHarness(t, "remote.origin.url "+up, "remote.origin.daemonAction none", "remote.origin.daemonWatch false")
	commit(t, h.dir, "one")
	h.do(protocol.Push{Remote: "origin"})
	h.out.await(t, 1, "ERROR origin push failed: .*")
	d := h.clock.nextWait(t)
	git(t, "", "init", "-q", "--bare", up)
	h.clock.Advance(d)
	h.out.await(t, 1, "STATUS origin pushed")
	h.out.exactly(t, 1, "ERROR .*")
}

// A failed push is tried again at once when a node of the remote comes
// back (a remote of several nodes: the push to every URL failed for want
// of one), not at the end of its backoff.
func TestFailedPushRetriedWhenNodeJoins(t *testing.T) {
	up := t.TempDir() + "/up.git"
	h := newHarness(t, "remote.origin.url "+up, "remote.origin.daemonAction none")
	commit(t, h.dir, "one")
	h.dialer.next(t, "origin").first(t, watch.Refs{})
	h.out.await(t, 1, "CONNECTED origin")
	h.do(protocol.Push{Remote: "origin"})
	h.out.await(t, 1, "ERROR origin push failed: .*")
	h.clock.nextWait(t)
	git(t, "", "init", "-q", "--bare", up)
	h.dialer.join("origin") // the clock stands still: only the join retries
	h.out.await(t, 1, "STATUS origin pushed")
	h.out.exactly(t, 1, "ERROR .*")
}

// Other work for the runner (a push) does not retry a failed fetch ahead
// of its backoff.
func TestFailedFetchWaitsItsTurn(t *testing.T) {
	h, _, _, makeUp := retryHarness(t)
	d := h.clock.nextWait(t)
	makeUp()
	h.do(protocol.Push{Remote: "origin"})
	h.out.await(t, 1, "STATUS origin up to date")
	h.out.exactly(t, 0, "STATUS origin fetched")
	h.clock.Advance(d)
	h.out.await(t, 1, "STATUS origin fetched")
}

// Each PUSH command is answered, also when it fails as the last did; the
// retries by backoff say nothing new.
func TestPushCommandAlwaysAnswered(t *testing.T) {
	up := t.TempDir() + "/up.git"
	h := newHarness(t, "remote.origin.url "+up, "remote.origin.daemonAction none", "remote.origin.daemonWatch false")
	commit(t, h.dir, "one")
	h.do(protocol.Push{Remote: "origin"})
	h.out.await(t, 1, "ERROR origin push failed: .*")
	h.clock.Advance(h.clock.nextWait(t))
	h.clock.nextWait(t) // the retry failed: quietly
	h.out.exactly(t, 1, "ERROR .*")
	h.do(protocol.Push{Remote: "origin"})
	h.out.await(t, 2, "ERROR origin push failed: .*")
}
