package watch

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
)

// ErrNoWatches is wrapped when the system has no inotify instance or watch
// left (fs.inotify.max_user_instances or max_user_watches); the watcher
// then polls.
var ErrNoWatches = errors.New("inotify watches exhausted")

// DefaultCheck is how often a hub stats the refs directories and
// packed-refs of every repository it watches, for changes inotify did not
// report: a few stats per repository, in one batch, and no process.
// These stats are most of what an idle far side costs (300 repositories:
// 0.100% of a core every 10 s); inotify loses no event short of a queue
// overflow, which lists every repository at once, so 20 s is enough.
const DefaultCheck = 20 * time.Second

// DefaultSweep is how many checks make a sweep: over one sweep (20
// minutes with a hub), every repository lists its refs once, spread evenly, for a
// change neither inotify nor a stat saw (a ref file rewritten in place
// while events were lost).
const DefaultSweep = 60

// Hub shares one inotify instance among any number of watched
// repositories: fs.inotify.max_user_instances is 128 on a default system,
// which a daemon with many local remotes or a far-side watcher serving
// many repositories would exhaust with one instance each.
//
// Every DefaultCheck it also stats, in one batch, what each repository's
// last listing read (refs directories, packed-refs), and has a repository
// whose stat moved list its refs again: the safety net for events the
// kernel did not deliver. Each repository also lists its refs once every
// DefaultSweep checks, the repositories taking turns. An inotify queue overflow has every repository
// list its refs at once.
type Hub struct {
	w    *fsnotify.Watcher
	log  *slog.Logger
	done chan struct{}

	mu     sync.Mutex
	owners map[string]map[*sub]bool // watched directory -> subscriptions
	subs   map[*sub]bool
	limit  int // maximum directories watched, 0 = the system's limit (tests)
	turns  int // subscriptions so far, to spread their turns in a sweep
	closed bool
}

// sub is one repository's subscription to the hub.
type sub struct {
	gitDir string
	dirs   map[string]bool
	notify chan struct{}          // capacity 1: a pending "look again"
	stamps atomic.Pointer[stamps] // of the last listing, never modified
	turn   int                    // its check in a sweep
}

// setStamps hands the stamps of a listing to the hub's checks; st is
// not modified afterwards.
func (s *sub) setStamps(st stamps) { s.stamps.Store(&st) }

// NewHub starts a hub. It fails with ErrNoWatches when no inotify instance
// is left.
func NewHub(log *slog.Logger) (*Hub, error) {
	return newHub(log, DefaultCheck, DefaultSweep)
}

// newHub makes a hub that checks every check and lists every repository
// once every sweep checks (never when sweep is 0).
func newHub(log *slog.Logger, check time.Duration, sweep int) (*Hub, error) {
	w, err := fsnotify.NewBufferedWatcher(4096)
	if err != nil {
		if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ENOSPC) {
			err = fmt.Errorf("%w: %w", ErrNoWatches, err)
		}
		return nil, fmt.Errorf("inotify: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Hub{w: w, log: log, done: make(chan struct{}), owners: map[string]map[*sub]bool{}, subs: map[*sub]bool{}}
	go h.run()
	go h.checkLoop(check, sweep)
	return h, nil
}

// Close stops the hub; subscriptions get no more events.
func (h *Hub) Close() error {
	h.mu.Lock()
	if !h.closed {
		close(h.done)
	}
	h.closed = true
	h.mu.Unlock()
	return h.w.Close()
}

// checkLoop pokes, every period, the subscriptions whose stamps moved,
// and those whose turn in the sweep it is.
func (h *Hub) checkLoop(period time.Duration, sweep int) {
	t := time.NewTicker(period)
	defer t.Stop()
	for n := 0; ; n++ {
		select {
		case <-h.done:
			return
		case <-t.C:
		}
		h.mu.Lock()
		subs := make([]*sub, 0, len(h.subs))
		for s := range h.subs {
			subs = append(subs, s)
		}
		h.mu.Unlock()
		for _, s := range subs {
			st := s.stamps.Load()
			if st == nil {
				continue // its first listing is under way
			}
			if (sweep > 0 && n%sweep == s.turn%sweep) || st.changed() {
				poke(s)
			}
		}
	}
}

// subscribe watches gitDir: the directory itself (packed-refs, reftable,
// refs appearing), refs/ recursively and reftable/.
//
// The path is made canonical (absolute, symlinks resolved): inotify
// watches inodes, so one directory reached by two spellings has one
// watch, and its events carry only one of the names.
func (h *Hub) subscribe(gitDir string) (*sub, error) {
	dir, err := filepath.Abs(gitDir)
	if err != nil {
		return nil, err
	}
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	s := &sub{gitDir: dir, dirs: map[string]bool{}, notify: make(chan struct{}, 1)}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, errors.New("watch hub closed")
	}
	h.turns++
	s.turn = h.turns
	h.subs[s] = true
	err = h.addDir(s, s.gitDir)
	for _, d := range []string{"refs", "reftable"} {
		if err == nil {
			err = h.addTree(s, filepath.Join(s.gitDir, d))
		}
	}
	if err != nil {
		h.removeLocked(s)
		return nil, err
	}
	return s, nil
}

// unsubscribe drops s and the watches no one else needs.
func (h *Hub) unsubscribe(s *sub) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.removeLocked(s)
}

func (h *Hub) removeLocked(s *sub) {
	delete(h.subs, s)
	for d := range s.dirs {
		owners := h.owners[d]
		delete(owners, s)
		if len(owners) == 0 {
			delete(h.owners, d)
			if !h.closed {
				_ = h.w.Remove(d) // gone already when the directory was removed
			}
		}
	}
	s.dirs = nil
}

// addTree watches root and every directory below it; a missing root is
// not an error (refs/ may be absent in a reftable repository).
func (h *Hub) addTree(s *sub, root string) error {
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // raced with a deletion; the rescan settles it
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		return h.addDir(s, path)
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

func (h *Hub) addDir(s *sub, dir string) error {
	if s.dirs[dir] {
		return nil
	}
	if len(h.owners[dir]) == 0 {
		if h.limit > 0 && len(h.owners) >= h.limit {
			return fmt.Errorf("watch %s: %w (limit %d)", dir, ErrNoWatches, h.limit)
		}
		if err := h.w.Add(dir); err != nil {
			if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EMFILE) {
				return fmt.Errorf("watch %s: %w: %w", dir, ErrNoWatches, err)
			}
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
				return nil
			}
			return fmt.Errorf("watch %s: %w", dir, err)
		}
		h.owners[dir] = map[*sub]bool{}
	}
	h.owners[dir][s] = true
	s.dirs[dir] = true
	return nil
}

func (h *Hub) run() {
	for {
		select {
		case ev, ok := <-h.w.Events:
			if !ok {
				return
			}
			h.handle(ev)
		case err, ok := <-h.w.Errors:
			if !ok {
				return
			}
			// An overflow or read error: events may be lost, so every
			// repository looks again.
			h.log.Warn("inotify error; rescanning all repositories", "err", err)
			h.mu.Lock()
			for s := range h.subs {
				poke(s)
			}
			h.mu.Unlock()
		}
	}
}

func (h *Hub) handle(ev fsnotify.Event) {
	name := filepath.Clean(ev.Name)
	dir, base := filepath.Dir(name), filepath.Base(name)
	h.mu.Lock()
	defer h.mu.Unlock()
	// A watched directory itself went away: its watch is gone too.
	if owners, ok := h.owners[name]; ok && ev.Has(fsnotify.Remove|fsnotify.Rename) {
		for s := range owners {
			delete(s.dirs, name)
			poke(s)
		}
		delete(h.owners, name)
	}
	for s := range h.owners[dir] {
		if !relevant(s.gitDir, dir, base) {
			continue
		}
		if ev.Has(fsnotify.Create) {
			if fi, err := os.Lstat(name); err == nil && fi.IsDir() {
				if err := h.addTree(s, name); err != nil {
					h.log.Warn("cannot watch new ref directory; rescans will find its refs", "dir", name, "err", err)
				}
			}
		}
		poke(s)
	}
}

// relevant filters events: in the git directory itself only refs,
// packed-refs and reftable matter (not index, FETCH_HEAD, logs...); below
// refs/ and reftable/ everything but lock and temporary files.
func relevant(gitDir, dir, base string) bool {
	if strings.HasSuffix(base, ".lock") || strings.HasSuffix(base, ".new") {
		return false
	}
	if dir == gitDir {
		return base == "packed-refs" || base == "refs" || base == "reftable"
	}
	return true
}

func poke(s *sub) {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}
