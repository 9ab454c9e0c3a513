package daemon

import (
	"os"
	"testing"

	"github.com/git-remote-daemon/git-remote-daemon/protocol"
	"github.com/git-remote-daemon/git-remote-daemon/watch"
)

// RELOAD: an added remote starts, a removed one stops and its state is
// forgotten, a changed one restarts, an unchanged one is left alone.
func TestReloadDiffs(t *testing.T) {
	cfg := append(append(noneRemote("keep"), noneRemote("gone")...), noneRemote("edit")...)
	h := newHarness(t, cfg...)
	sessions := map[string]*session{}
	for _, name := range []string{"keep", "gone", "edit"} {
		sessions[name] = h.dialer.next(t, name)
		sessions[name].first(t, watch.Refs{"refs/heads/main": sha(1)})
		h.out.await(t, 1, "CHANGED "+name+" "+sha(1))
	}
	awaitKnown(t, h, "gone", watch.Refs{"refs/heads/main": sha(1)})

	git(t, h.dir, "remote", "remove", "gone")
	git(t, h.dir, "config", "remote.edit.fetch", "+refs/heads/*:refs/remotes/edit/*")
	git(t, h.dir, "config", "remote.new.url", "/nowhere/new")
	git(t, h.dir, "config", "remote.new.daemonAction", "none")
	h.do(protocol.Reload{})

	if sessions["gone"].alive() || sessions["edit"].alive() {
		t.Fatal("a removed or changed remote is still watched")
	}
	if !sessions["keep"].alive() {
		t.Fatal("an unchanged remote was restarted")
	}
	h.dialer.none(t, "gone")
	h.dialer.none(t, "keep")
	if _, err := os.Stat(knownPath(h.d.repo.CommonDir, "gone")); !os.IsNotExist(err) {
		t.Fatalf("the state of a removed remote is kept: %v", err)
	}
	for _, rs := range h.d.book.snapshot().Remotes {
		if rs.Name == "gone" {
			t.Fatal("the status still lists a removed remote")
		}
	}
	h.dialer.next(t, "edit").first(t, watch.Refs{"refs/heads/main": sha(1)})
	h.dialer.next(t, "new").first(t, watch.Refs{})
	h.out.await(t, 1, "CONNECTED new")
	h.out.await(t, 2, "CONNECTED edit")
	h.out.exactly(t, 1, "CONNECTED keep")
	h.out.exactly(t, 1, "DISCONNECTED gone")
	h.out.exactly(t, 1, "DISCONNECTED edit")
	h.out.exactly(t, 0, "DISCONNECTED (keep|new)")
	h.out.exactly(t, 3, "CHANGED .*") // edit remembered what it had acted on
}

// A change of remotedaemon.* restarts every remote.
func TestReloadGlobalChangeRestartsAll(t *testing.T) {
	h := newHarness(t, append(noneRemote("a"), noneRemote("b")...)...)
	a, b := h.dialer.next(t, "a"), h.dialer.next(t, "b")
	h.do(protocol.Reload{})
	if !a.alive() || !b.alive() {
		t.Fatal("a RELOAD that changed nothing restarted a remote")
	}
	git(t, h.dir, "config", "remotedaemon.pollInterval", "5m")
	h.do(protocol.Reload{})
	if a.alive() || b.alive() {
		t.Fatal("a change of remotedaemon.* did not restart every remote")
	}
	h.dialer.next(t, "a")
	h.dialer.next(t, "b")
}

// A RELOAD while paused changes what runs at RESUME, and starts nothing.
func TestReloadWhilePaused(t *testing.T) {
	h := newHarness(t, noneRemote("a")...)
	h.dialer.next(t, "a").first(t, watch.Refs{})
	h.do(protocol.Pause{})
	h.out.await(t, 1, "DISCONNECTED a")
	git(t, h.dir, "config", "remote.b.url", "/nowhere/b")
	h.do(protocol.Reload{})
	h.dialer.none(t, "b")
	h.do(protocol.Resume{})
	h.dialer.next(t, "a")
	h.dialer.next(t, "b")
}
