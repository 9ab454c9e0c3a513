package watch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// gitCmd is git isolated from the user's configuration, run in dir.
func gitCmd(dir string, args ...string) *exec.Cmd {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir, "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.org", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.org")
	return cmd
}

func git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := gitCmd(dir, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// newRepo makes a bare repository with one commit on main and returns its
// git dir and that commit.
func newRepo(t testing.TB) (string, string) {
	dir := t.TempDir()
	bare := filepath.Join(dir, "r.git")
	git(t, dir, "init", "-q", "--bare", bare)
	c := git(t, dir, "--git-dir="+bare, "commit-tree", git(t, dir, "--git-dir="+bare, "hash-object", "-t", "tree", "-w", "/dev/null"), "-m", "one")
	git(t, dir, "--git-dir="+bare, "update-ref", "refs/heads/main", c)
	return bare, c
}

type recorder struct {
	updates chan Update
}

func startWatch(t *testing.T, gitDir string, opts Options) (*recorder, chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	rec := &recorder{updates: make(chan Update, 1000)}
	done := make(chan error, 1)
	go func() {
		done <- Watch(ctx, gitDir, opts, func(u Update) error { rec.updates <- u; return nil })
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	rec.next(t) // the first update: watch established
	return rec, done
}

func (r *recorder) next(t *testing.T) Update {
	t.Helper()
	select {
	case u := <-r.updates:
		return u
	case <-time.After(10 * time.Second):
		t.Fatal("no update within 10s")
	}
	return Update{}
}

// until waits for an update whose refs satisfy ok.
func (r *recorder) until(t *testing.T, what string, ok func(Refs) bool) Update {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case u := <-r.updates:
			if ok(u.Refs) {
				return u
			}
		case <-deadline:
			t.Fatalf("never saw %s", what)
		}
	}
}

func TestWatchSeesEveryKindOfChange(t *testing.T) {
	for _, mode := range []string{"inotify", "polling"} {
		t.Run(mode, func(t *testing.T) {
			gitDir, c := newRepo(t)
			opts := Options{Poll: 20 * time.Millisecond}
			if mode == "inotify" {
				hub, err := NewHub(nil)
				if err != nil {
					t.Fatal(err)
				}
				defer hub.Close()
				opts.Hub = hub
			}
			rec, _ := startWatch(t, gitDir, opts)
			steps := []struct {
				name string
				do   []string
				want Change
			}{
				{"new branch", []string{"update-ref", "refs/heads/b", c}, Change{Ref: "refs/heads/b", New: c}},
				{"nested branch in new dirs", []string{"update-ref", "refs/heads/x/y/z", c}, Change{Ref: "refs/heads/x/y/z", New: c}},
				{"tag", []string{"tag", "v1", c}, Change{Ref: "refs/tags/v1", New: c}},
				{"delete", []string{"update-ref", "-d", "refs/heads/b"}, Change{Ref: "refs/heads/b", Old: c}},
			}
			for _, st := range steps {
				git(t, gitDir, append([]string{"--git-dir=" + gitDir}, st.do...)...)
				u := rec.next(t)
				if len(u.Changes) != 1 || u.Changes[0] != st.want {
					t.Fatalf("%s: changes %+v, want %+v", st.name, u.Changes, st.want)
				}
			}
			// pack-refs moves refs without changing them: no update, but a
			// later change to a packed ref and its deletion are seen.
			git(t, gitDir, "--git-dir="+gitDir, "pack-refs", "--all")
			git(t, gitDir, "--git-dir="+gitDir, "update-ref", "-d", "refs/tags/v1")
			u := rec.next(t)
			if len(u.Changes) != 1 || u.Changes[0] != (Change{Ref: "refs/tags/v1", Old: c}) {
				t.Fatalf("delete of a packed ref: %+v", u.Changes)
			}
		})
	}
}

// TestBurst makes 300 updates (new nested directories, deletions,
// pack-refs) and checks the watcher ends in exactly git's state.
func TestBurst(t *testing.T) {
	gitDir, c := newRepo(t)
	hub, err := NewHub(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	rec, _ := startWatch(t, gitDir, Options{Hub: hub})
	var script strings.Builder
	name := func(i int) string { return fmt.Sprintf("refs/heads/d%d/b%d", i/20, i) }
	expect := Refs{"refs/heads/main": c}
	for i := 0; i < 300; i++ {
		if i%10 == 9 && i >= 39 { // a ref made in an earlier transaction
			fmt.Fprintf(&script, "delete %s\n", name(i-39))
			delete(expect, name(i-39))
		} else {
			fmt.Fprintf(&script, "create %s %s\n", name(i), c)
			expect[name(i)] = c
		}
	}
	lines := strings.SplitAfter(script.String(), "\n")
	for i := 0; i < len(lines); i += 30 { // 10 transactions, pack-refs in between
		cmd := exec.Command("git", "--git-dir="+gitDir, "update-ref", "--stdin")
		cmd.Stdin = strings.NewReader(strings.Join(lines[i:min(i+30, len(lines))], ""))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("update-ref: %v\n%s", err, out)
		}
		if i == 120 {
			git(t, gitDir, "--git-dir="+gitDir, "pack-refs", "--all", "--prune")
		}
	}
	want, err := Snapshot(context.Background(), gitDir)
	if err != nil {
		t.Fatal(err)
	}
	if !want.Equal(expect) {
		t.Fatalf("git has %d refs, the script makes %d", len(want), len(expect))
	}
	rec.until(t, "the final state", want.Equal)
}

func TestFallbackToPollingWhenWatchesRunOut(t *testing.T) {
	gitDir, c := newRepo(t)
	hub, err := NewHub(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	hub.limit = 1 // as if fs.inotify.max_user_watches were reached
	var reason error
	rec, _ := startWatch(t, gitDir, Options{Hub: hub, Poll: 20 * time.Millisecond, OnPolling: func(err error) { reason = err }})
	if !errors.Is(reason, ErrNoWatches) {
		t.Fatalf("OnPolling reason = %v", reason)
	}
	git(t, gitDir, "--git-dir="+gitDir, "update-ref", "refs/heads/polled", c)
	rec.until(t, "refs/heads/polled", func(r Refs) bool { return r["refs/heads/polled"] == c })
	hub.mu.Lock()
	defer hub.mu.Unlock()
	if len(hub.owners) != 0 {
		t.Errorf("watches left behind after the fallback: %v", hub.owners)
	}
}

func TestRepositoryRemoved(t *testing.T) {
	gitDir, _ := newRepo(t)
	hub, err := NewHub(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	_, done := startWatch(t, gitDir, Options{Hub: hub})
	if err := os.RemoveAll(gitDir); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrGone) {
			t.Fatalf("Watch returned %v, want ErrGone", err)
		}
		done <- err // for the cleanup
	case <-time.After(10 * time.Second):
		t.Fatal("removal not noticed")
	}
	if err := Watch(context.Background(), gitDir, Options{Hub: hub}, func(Update) error { return nil }); !errors.Is(err, ErrGone) {
		t.Fatalf("Watch on a missing repository: %v", err)
	}
}

func TestSharedHubAndUnsubscribe(t *testing.T) {
	hub, err := NewHub(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	a, ca := newRepo(t)
	b, _ := newRepo(t)
	recA, _ := startWatch(t, a, Options{Hub: hub})
	ctx, cancel := context.WithCancel(context.Background())
	doneB := make(chan error)
	go func() {
		doneB <- Watch(ctx, b, Options{Hub: hub}, func(Update) error { return nil })
	}()
	git(t, a, "--git-dir="+a, "update-ref", "refs/heads/n", ca)
	recA.until(t, "the change in a", func(r Refs) bool { return r["refs/heads/n"] == ca })
	cancel()
	if err := <-doneB; err != nil {
		t.Fatal(err)
	}
	hub.mu.Lock()
	defer hub.mu.Unlock()
	for d := range hub.owners {
		if strings.HasPrefix(d, b) {
			t.Errorf("watch on %s kept after b's watcher ended", d)
		}
	}
}

func TestParseRefs(t *testing.T) {
	if _, err := ParseRefs([]byte("abc refs/heads/x\n")); err == nil {
		t.Error("short sha accepted")
	}
	r, err := ParseRefs([]byte(strings.Repeat("a", 40) + " refs/heads/x\n"))
	if err != nil || r["refs/heads/x"] != strings.Repeat("a", 40) {
		t.Errorf("ParseRefs = %v, %v", r, err)
	}
}

// FuzzParseRefs: for-each-ref output (and, later, a far side's ref lists)
// never panics, and what it accepts lists back the same.
func FuzzParseRefs(f *testing.F) {
	f.Add([]byte(strings.Repeat("a", 40) + " refs/heads/x\n"))
	f.Add([]byte(strings.Repeat("b", 64) + " refs/tags/v1\n\n"))
	f.Add([]byte("x y\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		refs, err := ParseRefs(in)
		if err != nil {
			return
		}
		var out strings.Builder
		for r, sha := range refs {
			fmt.Fprintf(&out, "%s %s\n", sha, r)
		}
		again, err := ParseRefs([]byte(out.String()))
		if err != nil || !again.Equal(refs) {
			t.Fatalf("re-parse: %v %v", again, err)
		}
	})
}

// TestSameRepositoryTwoSpellings: one repository watched through a
// relative path, an absolute one and a symlink; every watcher sees a
// change (inotify reports a directory's events under one name only).
func TestSameRepositoryTwoSpellings(t *testing.T) {
	gitDir, c := newRepo(t)
	hub, err := newHub(nil, time.Hour, 0) // inotify alone
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	link := filepath.Join(t.TempDir(), "link.git")
	if err := os.Symlink(gitDir, link); err != nil {
		t.Fatal(err)
	}
	t.Chdir(filepath.Dir(gitDir))
	var recs []*recorder
	for _, spelling := range []string{filepath.Base(gitDir), gitDir, link} {
		rec, _ := startWatch(t, spelling, Options{Hub: hub})
		recs = append(recs, rec)
	}
	git(t, gitDir, "--git-dir="+gitDir, "update-ref", "refs/heads/seen", c)
	for i, rec := range recs {
		u := rec.next(t) // from inotify: the hub makes no checks
		if u.Refs["refs/heads/seen"] != c {
			t.Fatalf("watcher %d: %+v", i, u)
		}
	}
}

// Watch returns nil when its context ends, even before the first
// listing finished.
func TestWatchCancelledBeforeFirstListing(t *testing.T) {
	gitDir, _ := newRepo(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	called := false
	if err := Watch(ctx, gitDir, Options{}, func(Update) error { called = true; return nil }); err != nil {
		t.Errorf("Watch with its context ended: %v", err)
	}
	if called {
		t.Error("fn called after the context ended")
	}
}

// A ref transaction commits its refs one file at a time while it holds
// their lock files: a listing in the middle waits for it, so an atomic
// update is one update, however slowly the files move.
func TestTransactionIsOneUpdate(t *testing.T) {
	hub, err := NewHub(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	gitDir, c := newRepo(t)
	rec, _ := startWatch(t, gitDir, Options{Hub: hub})
	heads := filepath.Join(gitDir, "refs", "heads")
	// As git commits "create x, delete main": main locked, x written,
	// then (40 ms later, far past the 2 ms quiet time) main and its lock
	// removed.
	if err := os.WriteFile(filepath.Join(heads, "main.lock"), []byte(c+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(heads, "x"), []byte(c+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(40 * time.Millisecond)
	if err := os.Remove(filepath.Join(heads, "main")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(heads, "main.lock")); err != nil {
		t.Fatal(err)
	}
	u := rec.next(t)
	want := []Change{{Ref: "refs/heads/main", Old: c}, {Ref: "refs/heads/x", New: c}}
	if !reflect.DeepEqual(u.Changes, want) {
		t.Fatalf("first update after the transaction: %+v, want %+v in one", u.Changes, want)
	}
}
