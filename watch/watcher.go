package watch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"
)

// Options tune Watch. The zero value works.
type Options struct {
	// Hub is the shared inotify instance. Nil means poll.
	Hub *Hub
	// Settle is how long the refs must be quiet after an event before
	// they are listed (default 2ms); MaxDelay caps that wait during a
	// continuous burst (default 50ms).
	Settle, MaxDelay time.Duration
	// Poll is the period at which the watcher stats the refs directories
	// and packed-refs when inotify cannot be used (default 1s); it lists
	// the refs only when one of them moved, and every DefaultSweep polls.
	// With a Hub, the hub makes the same checks for all its repositories
	// every DefaultCheck.
	Poll time.Duration
	// OnPolling is called once when the watcher falls back to polling,
	// with the reason.
	OnPolling func(reason error)
	// Logger receives debug logs; nil discards them.
	Logger *slog.Logger

	onList func() // tests: called before each listing
}

func (o *Options) defaults() {
	if o.Settle <= 0 {
		o.Settle = 2 * time.Millisecond
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = 50 * time.Millisecond
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Update is what Watch reports: the complete current refs, and the
// changes since the previous update. The first update, sent once the
// watch is established (or re-established), has First set and no
// Changes: its refs are all news to the receiver.
type Update struct {
	First   bool
	Refs    Refs
	Changes []Change
}

// ErrGone is wrapped when the watched repository disappears.
var ErrGone = errors.New("repository is gone")

// Watch watches the refs of the repository at gitDir (a git directory, see
// FindGitDir) and calls fn: first with the refs once the watch is set up,
// then after every change. It returns nil when ctx ends, fn's error if fn
// fails, or an error when the repository can no longer be read (wrapping
// ErrGone when it was removed).
func Watch(ctx context.Context, gitDir string, opts Options, fn func(Update) error) error {
	opts.defaults()
	if fi, err := os.Stat(gitDir); err != nil || !fi.IsDir() {
		return fmt.Errorf("%s: %w", gitDir, ErrGone)
	}
	var notify <-chan struct{}
	var sub *sub // nil when polling
	if opts.Hub != nil {
		s, err := opts.Hub.subscribe(gitDir)
		if err == nil {
			defer opts.Hub.unsubscribe(s)
			notify, sub = s.notify, s
		} else if errors.Is(err, ErrNoWatches) {
			opts.Hub = nil
			if opts.OnPolling != nil {
				opts.OnPolling(err)
			}
		} else {
			return err
		}
	}
	// The first listing comes after the watch exists: a change in between
	// is either in it or triggers an event.
	refs, st, _, err := snapshot(ctx, gitDir, nil, &opts)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	// With a hub, the hub checks the stamps; polling, the watcher does.
	var tick <-chan time.Time
	if sub != nil {
		sub.setStamps(st)
	} else {
		ticker := time.NewTicker(opts.Poll)
		defer ticker.Stop()
		tick = ticker.C
	}
	if err := fn(Update{First: true, Refs: refs}); err != nil {
		return err
	}
	for polls := 1; ; polls++ {
		select {
		case <-ctx.Done():
			return nil
		case <-tick:
			// Every DefaultSweep polls it lists anyway, as the hub's
			// sweep does.
			if polls%DefaultSweep != 0 && !st.changed() {
				continue
			}
		case <-notify:
			if !settle(ctx, notify, opts.Settle, opts.MaxDelay) {
				return nil
			}
		}
		now, nowSt, err := settledSnapshot(ctx, gitDir, refs, &opts)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		st = nowSt
		if sub != nil {
			sub.setStamps(st)
		}
		if changes := Diff(refs, now); len(changes) > 0 {
			opts.Logger.Debug("refs changed", "git_dir", gitDir, "changes", len(changes))
			refs = now
			if err := fn(Update{Refs: now.Clone(), Changes: changes}); err != nil {
				return err
			}
		}
	}
}

// settle waits until no event came for quiet, or max has passed. It
// returns false when ctx ended.
func settle(ctx context.Context, notify <-chan struct{}, quiet, max time.Duration) bool {
	deadline := time.NewTimer(max)
	defer deadline.Stop()
	t := time.NewTimer(quiet)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-deadline.C:
			return true
		case <-t.C:
			return true
		case <-notify:
			t.Reset(quiet)
		}
	}
}

// lockWait bounds how long a listing waits for a ref transaction in
// progress to commit (a lock file left by a killed git does not hold the
// watcher longer), and lockPoll is how often it looks again.
const (
	lockWait = 200 * time.Millisecond
	lockPoll = 5 * time.Millisecond
)

// settledSnapshot is snapshot, listing again while a ref transaction is
// in progress: git commits an atomic push's refs one file at a time, and
// a listing in the middle would report one batch as two.
func settledSnapshot(ctx context.Context, gitDir string, prev Refs, opts *Options) (Refs, stamps, error) {
	deadline := time.Now().Add(lockWait)
	for {
		refs, st, locked, err := snapshot(ctx, gitDir, prev, opts)
		if err != nil || !locked || time.Now().After(deadline) {
			return refs, st, err
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(lockPoll):
		}
	}
}

// snapshot lists the refs in process (git for what it cannot read) and
// stamps what it read; objects of the previous refs are known to exist;
// locked reports a ref transaction in progress.
func snapshot(ctx context.Context, gitDir string, prev Refs, opts *Options) (refs Refs, st stamps, locked bool, err error) {
	if opts.onList != nil {
		opts.onList()
	}
	known := make(map[string]bool, len(prev))
	for _, oid := range prev {
		known[oid] = true
	}
	// A repository being removed can look like one with no refs: like
	// git, require HEAD, refs/ and objects/, before and after.
	if isRepo(gitDir) {
		refs, st, locked, err := readRefs(ctx, gitDir, known)
		if err != nil && (ctx.Err() != nil || isRepo(gitDir)) {
			return nil, nil, false, err
		}
		if err == nil && isRepo(gitDir) {
			return refs, st, locked, nil
		}
	}
	return nil, nil, false, fmt.Errorf("%s: %w", gitDir, ErrGone)
}

func isRepo(gitDir string) bool {
	for _, p := range []string{"HEAD", "refs", "objects"} {
		if _, err := os.Stat(filepath.Join(gitDir, p)); err != nil {
			return false
		}
	}
	return true
}
