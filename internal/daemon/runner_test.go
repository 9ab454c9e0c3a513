package daemon

import (
	"errors"
	"testing"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/internal/transport"
	"github.com/git-remote-daemon/git-remote-daemon/protocol"
	"github.com/git-remote-daemon/git-remote-daemon/watch"
)

// within fails unless d is a jittered step: in [step/2, step).
func within(t *testing.T, d, step time.Duration) {
	t.Helper()
	if d < step/2 || d >= step {
		t.Fatalf("waited %s, want a delay in [%s, %s)", d, step/2, step)
	}
}

func noneRemote(name string) []string {
	return []string{"remote." + name + ".url /nowhere/" + name, "remote." + name + ".daemonAction none"}
}

// A failing remote is retried after growing delays, up to MaxBackoff; a
// connection that stayed up StableAfter starts them over, a short one
// does not.
func TestBackoffGrowsAndResets(t *testing.T) {
	h := newHarness(t, noneRemote("a")...)
	down := errors.New("connection refused")
	for _, step := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second} {
		h.dialer.next(t, "a").fail(t, down)
		d := h.clock.nextWait(t)
		within(t, d, step)
		h.clock.Advance(d)
	}
	s := h.dialer.next(t, "a")
	s.first(t, watch.Refs{})
	h.out.await(t, 1, "CONNECTED a")
	h.clock.Advance(time.Minute) // stable
	s.fail(t, down)
	within(t, h.clock.nextWait(t), time.Second)
	h.clock.Advance(time.Second)

	s = h.dialer.next(t, "a")
	s.first(t, watch.Refs{})
	h.clock.Advance(59 * time.Second) // not stable: the delay goes on growing
	s.fail(t, down)
	within(t, h.clock.nextWait(t), 2*time.Second)
	h.out.exactly(t, 2, "CONNECTED a")
	h.out.exactly(t, 2, "DISCONNECTED a")
}

// The same error is reported once however often the retry fails; a new
// error is reported, and so is the old one after a connection.
func TestErrorReportedOnce(t *testing.T) {
	h := newHarness(t, noneRemote("a")...)
	retry := func(err error) {
		t.Helper()
		h.dialer.next(t, "a").fail(t, err)
		h.clock.Advance(h.clock.nextWait(t))
	}
	errA, errB := errors.New("refused"), errors.New("host unreachable")
	retry(errA)
	retry(errA)
	retry(errA)
	h.out.exactly(t, 1, "ERROR a refused")
	retry(errB)
	retry(errB)
	h.out.exactly(t, 1, "ERROR a host unreachable")
	retry(errA)
	h.out.exactly(t, 2, "ERROR a refused")

	s := h.dialer.next(t, "a")
	s.first(t, watch.Refs{})
	s.fail(t, errA)
	h.clock.nextWait(t)
	h.out.exactly(t, 3, "ERROR a refused")
	h.out.exactly(t, 4, "ERROR .*")
}

// A RetryAfter error makes the daemon wait at least its After, unless a
// RELOAD or RESUME says to try now.
func TestRetryAfter(t *testing.T) {
	h := newHarness(t, noneRemote("a")...)
	refused := &transport.RetryAfter{Err: errors.New("permission denied"), After: 5 * time.Minute}
	h.dialer.next(t, "a").fail(t, refused)
	if d := h.clock.nextWait(t); d != 5*time.Minute {
		t.Fatalf("waited %s after a RetryAfter of 5m", d)
	}
	h.clock.Advance(4 * time.Minute)
	h.dialer.none(t, "a")
	h.clock.Advance(time.Minute)
	h.dialer.next(t, "a").fail(t, refused)
	h.clock.nextWait(t)
	h.out.exactly(t, 1, "ERROR a permission denied")

	h.do(protocol.Reload{}) // nothing changed: a is not restarted, but tried now
	h.dialer.next(t, "a").fail(t, refused)
	h.clock.nextWait(t)
	h.do(protocol.Resume{}) // not paused: the network is back, try now
	h.dialer.next(t, "a").first(t, watch.Refs{})
	h.out.await(t, 1, "CONNECTED a")
	h.out.exactly(t, 0, "DISCONNECTED a")
}

// A kick (RESUME while not paused) skips the wait and starts the delays
// over.
func TestKickResetsBackoff(t *testing.T) {
	h := newHarness(t, noneRemote("a")...)
	down := errors.New("down")
	for range 3 {
		h.dialer.next(t, "a").fail(t, down)
		h.clock.Advance(h.clock.nextWait(t))
	}
	h.dialer.next(t, "a").fail(t, down)
	within(t, h.clock.nextWait(t), 8*time.Second)
	h.do(protocol.Resume{})
	h.dialer.next(t, "a").fail(t, down)
	within(t, h.clock.nextWait(t), time.Second)
}

// A kick while connected is spent: it does not cut the wait after the
// next failure short.
func TestKickWhileConnectedIsSpent(t *testing.T) {
	h := newHarness(t, noneRemote("a")...)
	down := errors.New("down")
	h.dialer.next(t, "a").fail(t, down)
	h.clock.Advance(h.clock.nextWait(t))
	s := h.dialer.next(t, "a")
	h.do(protocol.Resume{}) // kicks a runner that is connecting
	s.first(t, watch.Refs{})
	s.fail(t, down)
	d := h.clock.nextWait(t)
	within(t, d, 2*time.Second)
	h.clock.Advance(d)
	h.dialer.next(t, "a").fail(t, down)
	within(t, h.clock.nextWait(t), 4*time.Second) // still growing: no kick came between
}

// Each change is acted on (here: reported and remembered); changes made
// while the daemon was away are found at connect.
func TestChangesRemembered(t *testing.T) {
	h := newHarness(t, noneRemote("a")...)
	s := h.dialer.next(t, "a")
	r1 := watch.Refs{"refs/heads/main": sha(1)}
	s.first(t, r1)
	h.out.await(t, 1, "CHANGED a "+sha(1))
	r2 := watch.Refs{"refs/heads/main": sha(2), "refs/heads/x": sha(3)}
	s.change(t, r1, r2)
	h.out.await(t, 1, "CHANGED a "+sha(2)+" "+sha(3)+"|CHANGED a "+sha(3)+" "+sha(2))
	awaitKnown(t, h, "a", r2)

	s.fail(t, nil)
	h.out.await(t, 1, "ERROR a connection closed")
	h.clock.Advance(h.clock.nextWait(t))
	r3 := watch.Refs{"refs/heads/main": sha(2)}
	h.dialer.next(t, "a").first(t, r3) // x was deleted meanwhile
	h.out.await(t, 1, "CHANGED a "+sha(0))
	awaitKnown(t, h, "a", r3)
	h.out.exactly(t, 3, "CHANGED a .*")
}

// awaitKnown waits until the remembered refs of remote are want.
func awaitKnown(t *testing.T, h *harness, remote string, want watch.Refs) {
	t.Helper()
	deadline := time.Now().Add(guard)
	for {
		got, _, err := loadKnown(h.d.repo.CommonDir, remote)
		if err == nil && len(watch.Diff(got, want)) == 0 && got != nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("known refs of %s: %v, want %v (%v)", remote, got, want, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
