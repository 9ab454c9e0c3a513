package daemon

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/internal/gitcfg"
	"github.com/git-remote-daemon/git-remote-daemon/protocol"
	"github.com/git-remote-daemon/git-remote-daemon/watch"
)

// daemonAction pull: a change is fetched, the checked-out branch that
// follows it is fast-forwarded, and a branch that diverged is reported
// and left alone.
func TestPullAction(t *testing.T) {
	up := bare(t, "up.git")
	src := filepath.Join(t.TempDir(), "src")
	git(t, "", "init", "-q", "-b", "main", src)
	c1 := commit(t, src, "one")
	git(t, src, "push", "-q", up, "main", "main:topic")

	h := newHarness(t, "remote.origin.url "+up, "remote.origin.fetch +refs/heads/*:refs/remotes/origin/*",
		"remote.origin.daemonAction pull", "branch.main.remote origin", "branch.main.merge refs/heads/main",
		"branch.topic.remote origin", "branch.topic.merge refs/heads/topic")
	git(t, h.dir, "fetch", "-q", "origin")
	git(t, h.dir, "checkout", "-q", "-b", "topic", "origin/topic")
	mine := commit(t, h.dir, "mine")
	git(t, h.dir, "checkout", "-q", "-b", "main", "origin/main")
	s := h.dialer.next(t, "origin")
	before := refsOf(t, up)
	s.first(t, before)
	h.out.await(t, 1, "CONNECTED origin")

	c2 := commit(t, src, "two")
	git(t, src, "push", "-q", up, "main")
	git(t, src, "checkout", "-q", "-b", "topic")
	commit(t, src, "theirs")
	git(t, src, "push", "-q", up, "topic")
	s.change(t, before, refsOf(t, up))
	h.out.await(t, 1, "STATUS origin fetched; fast-forwarded main "+c1[:10]+".."+c2[:10])
	h.out.exactly(t, 1, "ERROR origin branch topic has diverged from origin .*: not merged")
	if got := git(t, h.dir, "rev-parse", "HEAD"); got != c2 {
		t.Fatalf("HEAD at %s, want %s", got, c2)
	}
	if got := git(t, h.dir, "rev-parse", "topic"); got != mine {
		t.Fatalf("a diverged branch moved: %s, want %s", got, mine)
	}
	h.out.exactly(t, 1, "CHANGED .*")
}

// A failed fetch is an ERROR; the change is not remembered as acted on.
func TestFetchFails(t *testing.T) {
	h := newHarness(t, "remote.origin.url /nowhere/origin")
	s := h.dialer.next(t, "origin")
	s.first(t, watch.Refs{"refs/heads/main": sha(1)})
	h.out.await(t, 1, "ERROR origin fetch failed: .*")
	h.out.exactly(t, 0, "STATUS .*")
	if _, ok, _ := loadKnown(h.d.repo.CommonDir, "origin"); ok {
		t.Fatal("a failed fetch was remembered as done")
	}
}

// A push git refuses is an ERROR naming the branch.
func TestPushRejected(t *testing.T) {
	up := bare(t, "up.git")
	other := filepath.Join(t.TempDir(), "other")
	git(t, "", "init", "-q", "-b", "main", other)
	commit(t, other, "theirs")
	git(t, other, "push", "-q", up, "main")
	h := newHarness(t, "remote.origin.url "+up, "remote.origin.daemonAction none")
	commit(t, h.dir, "mine")
	h.dialer.next(t, "origin").first(t, refsOf(t, up))
	h.do(protocol.Push{Remote: "origin"})
	h.out.await(t, 1, `ERROR origin push failed: rejected: main \[rejected\].*`)
}

// The status file follows the events; a password in a URL is not shown;
// a remote no transport watches says so.
func TestStatusFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "status.json")
	h := newHarnessWith(t, func(o *Options) { o.StatusFile = path },
		append(noneRemote("a"), "remote.web.url https://me:secret@example.com/r.git", "remote.web.daemonAction none")...)
	h.out.await(t, 1, "STATUS web not watched: .*")
	s := h.dialer.next(t, "a")
	s.first(t, watch.Refs{"refs/heads/main": sha(1)})
	h.out.await(t, 1, "CHANGED a .*")
	s.fail(t, errors.New("refused"))
	h.out.await(t, 1, "ERROR a refused")

	// Written within statusEvery of the last change.
	rep := awaitReport(t, path, func(r Report) bool { return len(r.Remotes) == 2 && r.Remotes[0].LastError != "" })
	if len(rep.Remotes) != 2 {
		t.Fatalf("remotes %+v", rep.Remotes)
	}
	a, web := rep.Remotes[0], rep.Remotes[1]
	if a.Name != "a" || a.State != StateDisconnected || a.LastError != "refused" || a.LastChange.IsZero() || len(a.LastChangeTo) != 1 {
		t.Fatalf("a: %+v", a)
	}
	if web.State != StateNotWatched || web.URL != "https://me:xxxxx@example.com/r.git" || web.Transport != "other" {
		t.Fatalf("web: %+v", web)
	}
	h.do(protocol.Pause{})
	rep = awaitReport(t, path, func(r Report) bool { return r.Paused })
	var b strings.Builder
	if err := rep.Print(&b, a.LastErrorTime.Add(3*time.Second)); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"REMOTE", "a  ", "paused", "3s ago refused", "(" + sha(1)[:10] + ")", "not watched"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("status table lacks %q:\n%s", want, b.String())
		}
	}
}

// awaitReport reads the status file until ok accepts it, failing the
// test (with the last one read) after guard.
func awaitReport(t *testing.T, path string, ok func(Report) bool) Report {
	t.Helper()
	deadline := time.Now().Add(guard)
	for {
		rep, err := ReadReport(path)
		if err == nil && ok(rep) {
			return rep
		}
		if time.Now().After(deadline) {
			t.Fatalf("status file %s: %+v (%v)", path, rep, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Configure sees the configuration at start and after each RELOAD; its
// error is reported and the remotes run anyway.
func TestConfigureHook(t *testing.T) {
	seen := make(chan string, 10)
	h := newHarnessWith(t, func(o *Options) {
		o.Configure = func(ctx context.Context, cfg *gitcfg.Config) error {
			v, _ := cfg.Get("remotedaemon.thlisten")
			seen <- v
			if v == "bad" {
				return errors.New("cannot listen on bad")
			}
			return nil
		}
	}, noneRemote("a")...)
	if v := <-seen; v != "" {
		t.Fatalf("Configure saw %q", v)
	}
	git(t, h.dir, "config", "remotedaemon.thListen", "bad")
	h.do(protocol.Reload{})
	if v := <-seen; v != "bad" {
		t.Fatalf("Configure saw %q after RELOAD", v)
	}
	h.out.await(t, 1, `ERROR \* cannot listen on bad`)
	h.dialer.next(t, "a") // started,
	h.dialer.next(t, "a") // and restarted: a remotedaemon.* setting changed
}
