package watch

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestIdleWatcherListsNothing: once the refs are settled (older than the
// racy window), a watcher on a hub that checks every 20ms lists nothing
// while nothing changes, then sees a change inotify did not report.
func TestIdleWatcherListsNothing(t *testing.T) {
	gitDir, c := newRepo(t)
	hub, err := newHub(nil, 20*time.Millisecond, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	var listings atomic.Int32
	rec, _ := startWatch(t, gitDir, Options{Hub: hub, onList: func() { listings.Add(1) }})
	time.Sleep(racyWindow + time.Second) // the racy re-listings are over
	before := listings.Load()
	time.Sleep(time.Second) // 50 checks
	if n := listings.Load() - before; n != 0 {
		t.Errorf("%d listings in a second with nothing changing", n)
	}
	// inotify loses the repository's events (as after an overflow that
	// was not reported): the check still sees the new ref.
	hub.mu.Lock()
	for d := range hub.owners {
		_ = hub.w.Remove(d)
	}
	hub.mu.Unlock()
	git(t, gitDir, "--git-dir="+gitDir, "update-ref", "refs/heads/unseen/by/inotify", c)
	rec.until(t, "the change found by the check", func(r Refs) bool { return r["refs/heads/unseen/by/inotify"] == c })
}

// TestSweepFindsWhatStatsMiss: a ref file rewritten in place (its
// directory unchanged) while inotify lost the events is found by the
// sweep, each repository listing its refs once a sweep; a polling watcher
// lists its refs every DefaultSweep polls.
func TestSweepFindsWhatStatsMiss(t *testing.T) {
	for _, mode := range []string{"hub", "polling"} {
		t.Run(mode, func(t *testing.T) {
			gitDir, c := newRepo(t)
			c2 := git(t, gitDir, "--git-dir="+gitDir, "commit-tree", c+"^{tree}", "-p", c, "-m", "two")
			opts := Options{Poll: 20 * time.Millisecond}
			if mode == "hub" {
				hub, err := newHub(nil, 20*time.Millisecond, 5)
				if err != nil {
					t.Fatal(err)
				}
				defer hub.Close()
				opts.Hub = hub
				for range 3 { // repositories taking turns before and after gitDir's
					d, _ := newRepo(t)
					startWatch(t, d, opts)
				}
			}
			rec, _ := startWatch(t, gitDir, opts)
			time.Sleep(racyWindow + 100*time.Millisecond) // settled: no longer racy
			if opts.Hub != nil {
				opts.Hub.mu.Lock()
				for d := range opts.Hub.owners {
					_ = opts.Hub.w.Remove(d)
				}
				opts.Hub.mu.Unlock()
			}
			dir := filepath.Join(gitDir, "refs", "heads")
			fi, err := os.Stat(dir)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "main"), []byte(c2+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if fi2, err := os.Stat(dir); err != nil || !fi2.ModTime().Equal(fi.ModTime()) {
				t.Fatalf("the directory changed: %v", err)
			}
			rec.until(t, "main rewritten in place", func(r Refs) bool { return r["refs/heads/main"] == c2 })
		})
	}
}

// TestOverflowListsEveryRepository fills the hub's inotify queue until
// the kernel drops events (IN_Q_OVERFLOW): a ref changed in another
// repository meanwhile, whose events were dropped, is still seen at once,
// because an overflow makes every repository of the hub list its refs.
func TestOverflowListsEveryRepository(t *testing.T) {
	a, _ := newRepo(t)
	b, cb := newRepo(t)
	logs := &lockedBuffer{}
	hub, err := newHub(slog.New(slog.NewTextHandler(logs, nil)), time.Hour, 0) // no check to the rescue
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	startWatch(t, a, Options{Hub: hub})
	recB, _ := startWatch(t, b, Options{Hub: hub})
	data, err := os.ReadFile("/proc/sys/fs/inotify/max_queued_events")
	if err != nil {
		t.Fatal(err)
	}
	queue, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	// Hold the hub: fsnotify fills its channel and stops reading, so the
	// kernel queue fills up: each flood round is two events.
	hub.mu.Lock()
	flood := filepath.Join(a, "refs", "flood")
	for i := 0; i < queue/2+8000; i++ {
		if err := os.Symlink("x", flood); err != nil {
			hub.mu.Unlock()
			t.Fatal(err)
		}
		if err := os.Remove(flood); err != nil {
			hub.mu.Unlock()
			t.Fatal(err)
		}
	}
	git(t, b, "--git-dir="+b, "update-ref", "refs/heads/after-overflow", cb)
	hub.mu.Unlock()
	recB.until(t, "b's change after the overflow", func(r Refs) bool { return r["refs/heads/after-overflow"] == cb })
	if !strings.Contains(logs.String(), "rescanning all repositories") {
		t.Errorf("no overflow reported; logs:\n%s", logs.String())
	}
}

// TestStampsRacy: a directory modified just before its stamp was taken
// counts as changed at the next check (its next change may not move its
// time); an older one only when its stat moves.
func TestStampsRacy(t *testing.T) {
	dir := t.TempDir()
	st := stamps{}
	st.add(dir)
	if !st.changed() {
		t.Error("a directory modified just now is not racy")
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(dir, old, old); err != nil {
		t.Fatal(err)
	}
	st = stamps{}
	st.add(dir)
	if st.changed() {
		t.Error("an old, unchanged directory counts as changed")
	}
	if err := os.WriteFile(filepath.Join(dir, "new"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if !st.changed() {
		t.Error("a new entry not seen")
	}
	st = stamps{}
	st.add(filepath.Join(dir, "missing"))
	if st.changed() {
		t.Error("a missing file that stays missing counts as changed")
	}
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
