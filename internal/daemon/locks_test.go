package daemon

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A ref lock left behind by a git killed mid-fetch (the daemon was
// killed with -9) does not make every later fetch fail.
func TestFetchClearsStaleLock(t *testing.T) {
	dir := t.TempDir()
	git(t, dir, "init", "-q", "--bare", "up.git")
	git(t, dir, "clone", "-q", "up.git", "work")
	git(t, dir+"/work", "commit", "-q", "--allow-empty", "-m", "one")
	git(t, dir+"/work", "push", "-q", "origin", "HEAD:refs/heads/main")
	git(t, dir, "clone", "-q", "up.git", "clone")
	git(t, dir+"/work", "commit", "-q", "--allow-empty", "-m", "two")
	git(t, dir+"/work", "push", "-q", "origin", "HEAD:refs/heads/main")
	want := git(t, dir+"/work", "rev-parse", "HEAD")

	clone := filepath.Join(dir, "clone")
	lock := filepath.Join(clone, ".git/refs/remotes/origin/main.lock")
	other := filepath.Join(clone, ".git/refs/remotes/originals/x.lock") // another remote's
	old := time.Now().Add(-time.Hour)
	for _, l := range []string{lock, other} {
		if err := os.MkdirAll(filepath.Dir(l), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(l, []byte(want+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(l, old, old); err != nil {
			t.Fatal(err)
		}
	}

	repo, err := FindRepo(context.Background(), clone)
	if err != nil {
		t.Fatal(err)
	}
	d := &Daemon{repo: repo, log: slog.New(slog.DiscardHandler)}
	if err := d.fetch(context.Background(), "origin", false, nil); err != nil {
		t.Fatalf("fetch with a stale lock: %v", err)
	}
	if got := git(t, clone, "rev-parse", "refs/remotes/origin/main"); got != want {
		t.Errorf("origin/main = %s, want %s", got, want)
	}
	if _, err := os.Stat(lock); !os.IsNotExist(err) {
		t.Errorf("stale lock still there: %v", err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("another remote's lock was touched: %v", err)
	}
}

func TestRemoteLocksStayInTheRemote(t *testing.T) {
	dir := t.TempDir()
	lock := filepath.Join(dir, "refs/remotes/a/x.lock")
	if err := os.MkdirAll(filepath.Dir(lock), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(lock, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := remoteLocks(dir, "a"); len(got) != 1 || got[0] != lock {
		t.Errorf("remoteLocks(a) = %v", got)
	}
	for _, r := range []string{"", ".", "..", "../remotes", "a/../../x"} {
		if got := remoteLocks(dir, r); len(got) != 0 {
			t.Errorf("remoteLocks(%q) = %v", r, got)
		}
	}
}
