package daemon

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/internal/transport"
	"github.com/git-remote-daemon/git-remote-daemon/protocol"
	"github.com/git-remote-daemon/git-remote-daemon/watch"
)

// A remote may have any name git allows in a configuration, "." and ".."
// included: its state is saved all the same, and apart from the others.
func TestKnownAnyRemoteName(t *testing.T) {
	dir := t.TempDir()
	names := []string{".", "..", ".tmp-x", "a/b", "a%2Fb", "origin"}
	for i, name := range names {
		if err := saveKnown(dir, name, watch.Refs{"refs/heads/main": sha(i + 1)}); err != nil {
			t.Fatalf("save %q: %v", name, err)
		}
	}
	for i, name := range names {
		got, ok, err := loadKnown(dir, name)
		if err != nil || !ok || got["refs/heads/main"] != sha(i+1) {
			t.Fatalf("load %q: %v %v %v", name, got, ok, err)
		}
	}
	// The names it always had are kept: no change is reported again after an upgrade.
	if _, err := os.Stat(filepath.Join(dir, "remote-daemon", "known", "origin")); err != nil {
		t.Fatal(err)
	}
}

// A remote named "." has its changes remembered: a new start reports
// nothing that was already reported.
func TestDotRemoteRemembered(t *testing.T) {
	h := newHarness(t, append(noneRemote("origin"), noneRemote(".")...)...)
	for i, name := range []string{"origin", "."} {
		refs := watch.Refs{"refs/heads/main": sha(i + 1)}
		h.dialer.next(t, name).first(t, refs)
		h.out.await(t, 1, "CHANGED "+name+" "+sha(i+1))
		awaitKnown(t, h, name, refs)
	}
	h.do(protocol.Pause{})
	h.do(protocol.Resume{})
	for i, name := range []string{"origin", "."} {
		h.dialer.next(t, name).first(t, watch.Refs{"refs/heads/main": sha(i + 1)})
		h.out.await(t, 2, "CONNECTED "+name)
	}
	h.out.exactly(t, 2, "CHANGED .*")
}

// `PUSH *` says that `*` is no remote, under the name `*`, and no PUSH of
// an unknown remote makes a remote of it in the status.
func TestPushNoRemote(t *testing.T) {
	h := newHarness(t, noneRemote("a")...)
	h.do(protocol.Push{Remote: "nosuch"})
	h.out.await(t, 1, "ERROR nosuch PUSH: no such remote")
	for _, rs := range h.d.book.snapshot().Remotes {
		if rs.Name == "nosuch" {
			t.Fatalf("status lists a remote that does not exist: %+v", rs)
		}
	}
	h.do(protocol.Push{Remote: "*"})
	h.out.await(t, 1, `ERROR \* PUSH: \* is not a remote: PUSH takes the name of a remote`)
}

// Without remote.<name>.push, branches and tags are pushed (as the README
// says), and a push that changed nothing says so.
func TestPushTagsAndUpToDate(t *testing.T) {
	up := bare(t, "up.git")
	h := newHarness(t, pushRemote("origin", up)...)
	self := h.selfSession()
	c := commit(t, h.dir, "one")
	git(t, h.dir, "tag", "v1")
	self.first(t, refsOf(t, filepath.Join(h.dir, ".git")))
	h.dialer.next(t, "origin").first(t, watch.Refs{})
	h.out.await(t, 1, "STATUS origin pushed")
	if got := refsOf(t, up); got["refs/tags/v1"] != c || got["refs/heads/main"] != c {
		t.Fatalf("up has %v, want main and v1 at %s", got, c)
	}
	h.do(protocol.Push{Remote: "origin"})
	h.out.await(t, 1, "STATUS origin up to date")
	h.do(protocol.Pause{})
	h.out.exactly(t, 1, "STATUS origin pushed")
	h.out.exactly(t, 0, "ERROR .*")
}

// A push's own changes to a watched remote are no CHANGED, and are not
// fetched back.
func TestOwnPushNotChanged(t *testing.T) {
	up := bare(t, "up.git")
	h := newHarness(t, "remote.origin.url "+up, "remote.origin.daemonPush true",
		"remote.origin.fetch +refs/heads/*:refs/remotes/origin/*")
	self := h.selfSession()
	s := h.dialer.next(t, "origin")
	s.first(t, watch.Refs{})
	h.out.await(t, 1, "CONNECTED origin")
	commit(t, h.dir, "one")
	self.first(t, refsOf(t, filepath.Join(h.dir, ".git")))
	h.out.await(t, 1, "STATUS origin pushed")
	s.change(t, watch.Refs{}, refsOf(t, up))
	h.do(protocol.Pause{})
	h.out.exactly(t, 0, "CHANGED .*")
	h.out.exactly(t, 0, "STATUS origin fetched")
	h.out.exactly(t, 0, "ERROR .*")
	h.do(protocol.Resume{}) // and at a new connection, nothing of it is news
	h.dialer.next(t, "origin").first(t, refsOf(t, up))
	h.out.await(t, 2, "CONNECTED origin")
	h.do(protocol.Pause{})
	h.out.exactly(t, 0, "CHANGED .*")
	h.out.exactly(t, 0, "STATUS origin fetched")
}

// A RELOAD that the daemon's stop interrupts is no error.
func TestReloadAtStopNoError(t *testing.T) {
	h := newHarness(t, noneRemote("a")...)
	h.cancel()
	h.do(protocol.Reload{})
	h.out.exactly(t, 0, "ERROR .*")
}

// An error is reported once per cause, also across PAUSE and RESUME:
// the runner started again failing the same way says nothing new.
func TestErrorOnceAcrossResume(t *testing.T) {
	h := newHarness(t, noneRemote("a")...)
	refused := errors.New("refused")
	h.dialer.next(t, "a").fail(t, refused)
	h.clock.nextWait(t)
	h.out.exactly(t, 1, "ERROR a refused")
	h.do(protocol.Pause{})
	h.do(protocol.Resume{})
	h.dialer.next(t, "a").fail(t, refused)
	h.clock.nextWait(t)
	h.do(protocol.Resume{}) // not paused: retry now
	h.dialer.next(t, "a").fail(t, refused)
	h.clock.Advance(h.clock.nextWait(t))
	h.out.exactly(t, 1, "ERROR a refused")
	h.dialer.next(t, "a").first(t, watch.Refs{}) // connected: the next failure is news
	h.out.await(t, 1, "CONNECTED a")
}

// A transient state of the remote is a STATUS saying what the daemon
// waits for, once per cause, and no ERROR.
func TestTransientIsStatus(t *testing.T) {
	h := newHarness(t, noneRemote("a")...)
	waiting := &transport.Transient{Err: errors.New("channel error from peer: this node serves no repository"), Waiting: "the peer's daemon is not running"}
	for range 3 {
		h.dialer.next(t, "a").fail(t, waiting)
		h.clock.Advance(h.clock.nextWait(t))
	}
	h.out.exactly(t, 1, "STATUS a waiting: the peer's daemon is not running")
	h.out.exactly(t, 0, "ERROR .*")
}

// A transient state with Max caps the backoff: the waits grow, but never
// past Max (an xmpp:: node serving no repository yet may be replaced any
// moment by one that does, and nothing else would end the wait).
func TestTransientMaxCapsBackoff(t *testing.T) {
	h := newHarness(t, noneRemote("a")...)
	waiting := &transport.Transient{Err: errors.New("channel error from peer: this node serves no repository"),
		Waiting: "the peer's daemon is not running", Max: 5 * time.Second}
	var longest time.Duration
	for range 12 {
		h.dialer.next(t, "a").fail(t, waiting)
		d := h.clock.nextWait(t)
		longest = max(longest, d)
		h.clock.Advance(d)
	}
	if longest != 5*time.Second {
		t.Fatalf("longest wait %v, want the cap of 5s (the backoff grows past it)", longest)
	}
}

// A transient state with Wake ends the wait when Wake closes, and resets
// the backoff: an xmpp:: node that failed (another process of its
// identity answered) logs in again, and the daemon connects within
// seconds, not after the minutes its backoff had grown to (xmpp.txtar
// waited 1m41s, and once 1m56s, for a peer that was back).
func TestTransientWakeEndsBackoff(t *testing.T) {
	h := newHarnessWith(t, func(o *Options) { o.MaxBackoff = 3 * time.Minute }, noneRemote("a")...)
	failing := &transport.Transient{Err: errors.New("telehash: channel timeout"), Waiting: "the peer does not answer"}
	for range 8 {
		h.dialer.next(t, "a").fail(t, failing)
		h.clock.Advance(h.clock.nextWait(t))
	}
	wake := make(chan struct{})
	h.dialer.next(t, "a").fail(t, &transport.Transient{Err: failing.Err, Waiting: failing.Waiting, Wake: wake})
	if d := h.clock.nextWait(t); d < time.Minute {
		t.Fatalf("backoff after 9 failures: %v, want over a minute (the test needs a long wait)", d)
	}
	close(wake) // the peer's node logged in: no clock advance
	h.dialer.next(t, "a").fail(t, failing)
	if d := h.clock.nextWait(t); d >= 2*time.Second {
		t.Fatalf("wait after the peer came back and failed once: %v, want the reset backoff (under 2s)", d)
	}
}
