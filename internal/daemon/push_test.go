package daemon

import (
	"strings"
	"testing"

	"github.com/git-remote-daemon/git-remote-daemon/protocol"
	"github.com/git-remote-daemon/git-remote-daemon/watch"
)

func pushRemote(name, url string) []string {
	return []string{"remote." + name + ".url " + url, "remote." + name + ".daemonAction none",
		"remote." + name + ".daemonPush true"}
}

// Any number of PUSH requests while paused make one push after RESUME.
func TestPushCoalescedWhilePaused(t *testing.T) {
	up := bare(t, "up.git")
	h := newHarness(t, "remote.origin.url "+up, "remote.origin.daemonAction none")
	commit(t, h.dir, "one")
	h.dialer.next(t, "origin").first(t, watch.Refs{})
	h.out.await(t, 1, "CONNECTED origin")
	h.do(protocol.Pause{})
	h.out.exactly(t, 1, "DISCONNECTED origin")
	for range 5 {
		h.do(protocol.Push{Remote: "origin"})
	}
	h.out.exactly(t, 0, "STATUS origin pushed")
	h.do(protocol.Resume{})
	h.dialer.next(t, "origin").first(t, refsOf(t, up))
	h.out.await(t, 1, "STATUS origin pushed")
	if got, want := refsOf(t, up)["refs/heads/main"], git(t, h.dir, "rev-parse", "HEAD"); got != want {
		t.Fatalf("up has main at %q, want %s", got, want)
	}
	h.do(protocol.Pause{}) // waits for the runner: whatever it had to do is done
	h.out.exactly(t, 1, "STATUS origin pushed")
	h.out.exactly(t, 0, "ERROR .*")
}

// PUSH of an unknown remote is an error; requests made before the remote
// connects wait for it, and make one push.
func TestPushWaitsForConnect(t *testing.T) {
	up := bare(t, "up.git")
	h := newHarness(t, "remote.origin.url "+up, "remote.origin.daemonAction none")
	commit(t, h.dir, "one")
	s := h.dialer.next(t, "origin")
	h.do(protocol.Push{Remote: "nosuch"})
	h.out.await(t, 1, "ERROR nosuch PUSH: no such remote")
	h.do(protocol.Push{Remote: "origin"})
	h.do(protocol.Push{Remote: "origin"})
	s.first(t, watch.Refs{})
	h.out.await(t, 1, "STATUS origin pushed")
	h.do(protocol.Pause{})
	h.out.exactly(t, 1, "STATUS origin pushed")
}

// A RELOAD makes only the remotes with daemonPush that are new or whose
// settings changed push; the others are left alone, and local changes go
// on reaching every one of them.
func TestReloadPushesOnlyNewOrChanged(t *testing.T) {
	a, b, c, e := bare(t, "a.git"), bare(t, "b.git"), bare(t, "c.git"), bare(t, "e.git")
	h := newHarness(t, append(pushRemote("a", a), pushRemote("b", b)...)...)
	commit(t, h.dir, "one")
	self := h.selfSession()
	local := refsOf(t, h.d.repo.CommonDir)
	self.first(t, local)
	h.dialer.next(t, "a").first(t, watch.Refs{})
	h.dialer.next(t, "b").first(t, watch.Refs{})
	h.out.await(t, 1, "STATUS a pushed")
	h.out.await(t, 1, "STATUS b pushed")

	setConfig(t, h.dir, pushRemote("c", c)...)
	setConfig(t, h.dir, pushRemote("e", e)...)
	setConfig(t, h.dir, "remote.e.daemonWatch false") // not watched: pushed at once
	h.do(protocol.Reload{})
	if !self.alive() {
		t.Fatal("RELOAD restarted the watch of the local refs (which pushes every remote)")
	}
	h.dialer.next(t, "c").first(t, watch.Refs{})
	h.out.await(t, 1, "STATUS c pushed")
	h.out.await(t, 1, "STATUS e pushed")

	two := commit(t, h.dir, "two")
	next := refsOf(t, h.d.repo.CommonDir)
	self.change(t, local, next)
	for _, name := range []string{"a", "b", "c", "e"} {
		h.out.await(t, 2, "STATUS "+name+" pushed")
	}
	h.do(protocol.Pause{})
	for _, name := range []string{"a", "b", "c", "e"} {
		h.out.exactly(t, 2, "STATUS "+name+" pushed")
	}
	for _, up := range []string{a, b, c, e} {
		if got := refsOf(t, up)["refs/heads/main"]; got != two {
			t.Fatalf("%s has main at %q, want %s", up, got, two)
		}
	}
	h.out.exactly(t, 0, "ERROR .*")
}

// setConfig sets "key value" pairs in the repository at dir.
func setConfig(t *testing.T, dir string, kvs ...string) {
	t.Helper()
	for _, kv := range kvs {
		k, v, _ := strings.Cut(kv, " ")
		git(t, dir, "config", k, v)
	}
}
