package notify

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/internal/gitrepo"
	"github.com/git-remote-daemon/git-remote-daemon/protocol"
	"github.com/git-remote-daemon/git-remote-daemon/watch"
)

// DefaultMaxWatches caps the watches of one stream unless
// ServerOptions.MaxWatches says otherwise: a WATCH beyond it is answered
// "ERROR <id> too many watches (4096)". One process on the far side of
// ssh serves every remote of a daemon on that host: a daemon with a
// thousand remotes there needs a thousand watches on one stream. (It was
// 256, which split 300 repositories over two processes and left remotes
// past the 256th unwatched.) A watch costs a few hundred bytes beyond the
// first of its repository; a repository, one goroutine and a few inotify
// watches (its git directory and refs directories).
const DefaultMaxWatches = 4096

// MaxWatchesEnv, set in the environment of `git-remote-daemon
// notify-changes`, replaces DefaultMaxWatches: a host may cap what one
// process holds (the daemon then starts more sessions for the rest).
const MaxWatchesEnv = "GIT_REMOTE_DAEMON_MAX_WATCHES"

// MaxWatchesFrom reads MaxWatchesEnv's value: 0 (the default) when
// empty.
func MaxWatchesFrom(v string) (int, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%s=%q: want a positive number of watches", MaxWatchesEnv, v)
	}
	return n, nil
}

// ServerOptions configure Serve.
type ServerOptions struct {
	// Hub is shared by every watched repository; nil polls.
	Hub *watch.Hub
	// Timeout ends the server when no line arrived for that long
	// (default 30s): the client's pings stopped. Negative: never.
	Timeout time.Duration
	// Paths are watched at start, with ids "0", "1", ...
	Paths []string
	// MaxWatches caps the watches held at once by the stream (default
	// DefaultMaxWatches). Watches of one repository share one watcher and
	// one copy of its refs, so a watch costs a few hundred bytes beyond
	// the first of its repository.
	MaxWatches int
	// Resolve maps a WATCH path to a git directory; nil resolves it as
	// git does (gitrepo.FindGitDir). A server for one repository (a th::
	// node) pins every path to it.
	Resolve func(path string) (string, error)
	// Mux offers the mux1 capability: byte streams on which the real
	// git upload-pack and receive-pack run (helper.Serve), so that the
	// daemon's fetches need no new remote shell. Without it the server
	// answers CAPS, OPEN, DATA and EOF as servers before them did
	// ("ERROR * ... unknown verb").
	Mux bool
	// Logger receives logs (stderr); nil discards them.
	Logger *slog.Logger
}

// ErrTimeout is returned when the client went silent.
var ErrTimeout = errors.New("no heartbeat from the client")

// Serve speaks the server side of the protocol on in/out until in ends
// (nil), ctx ends (nil), the client goes silent (ErrTimeout) or out
// fails.
func Serve(ctx context.Context, in io.Reader, out io.Writer, opts ServerOptions) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	s := newServer(ctx, cancel, out, opts)
	defer s.wg.Wait()
	defer s.stopAll()
	defer cancel(nil) // ends the stream sessions before waiting for them
	defer s.streams.endAll(errors.New("notify: the connection ended"))
	return s.serve(in)
}

// server state. Lock order: mu, then wmu. Everything said about a watch
// is written while holding mu, so once unwatch returns nothing more is
// said about the old watch, and a reused id starts clean.
type server struct {
	ctx  context.Context
	fail context.CancelCauseFunc
	opts ServerOptions
	wg   sync.WaitGroup
	// slots bounds the repository watchers running, including ones
	// still stopping, to MaxWatches.
	slots chan struct{}

	wmu sync.Mutex
	w   *bufio.Writer

	mu      sync.Mutex
	watches map[string]*entry // by id
	repos   map[string]*repo  // by git directory

	streams streams // mux1 byte streams, by id
}

// entry is one watch id.
type entry struct {
	id    string
	repo  *repo
	ready bool // REF...READY sent
}

// repo is one watched repository, shared by every id watching it.
type repo struct {
	gitDir  string
	cancel  context.CancelFunc
	refs    watch.Refs // nil until the first listing
	entries map[*entry]bool
}

func newServer(ctx context.Context, fail context.CancelCauseFunc, out io.Writer, opts ServerOptions) *server {
	if opts.Timeout == 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.MaxWatches <= 0 {
		opts.MaxWatches = DefaultMaxWatches
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Resolve == nil {
		opts.Resolve = gitrepo.FindGitDir
	}
	return &server{ctx: ctx, fail: fail, opts: opts, w: bufio.NewWriter(out),
		slots:   make(chan struct{}, opts.MaxWatches),
		watches: map[string]*entry{}, repos: map[string]*repo{}}
}

// readLine is one line from the client, or the news that it was too long.
type readLine struct {
	text    string
	tooLong bool
}

func (s *server) serve(in io.Reader) error {
	ctx, opts := s.ctx, s.opts
	if err := s.write(Banner); err != nil {
		return err
	}
	for i, p := range opts.Paths {
		s.watch(fmt.Sprint(i), p)
	}

	lines := make(chan readLine)
	readErr := make(chan error, 1)
	go func() {
		// The reader never holds more than MaxLine bytes of a line: the
		// rest of a longer one is skipped as it arrives.
		r := protocol.NewReaderLimit(in, MaxLine)
		for {
			line, err := r.ReadLine()
			if err != nil && !errors.Is(err, protocol.ErrLineTooLong) {
				readErr <- err
				return
			}
			select {
			case lines <- readLine{text: line, tooLong: err != nil}:
			case <-ctx.Done():
				return
			}
		}
	}()
	var timeout <-chan time.Time
	var timer *time.Timer
	if opts.Timeout > 0 {
		timer = time.NewTimer(opts.Timeout)
		defer timer.Stop()
		timeout = timer.C
	}
	for {
		select {
		case <-ctx.Done():
			if err := context.Cause(ctx); !errors.Is(err, context.Canceled) {
				return err
			}
			return nil
		case err := <-readErr:
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("read: %w", err)
		case <-timeout:
			return fmt.Errorf("%w for %s", ErrTimeout, opts.Timeout)
		case line := <-lines:
			if timer != nil {
				timer.Reset(opts.Timeout)
			}
			if line.tooLong {
				_ = s.send(Msg{Kind: Error, ID: "*", Text: fmt.Sprintf("line too long (over %d bytes)", MaxLine)})
				continue
			}
			s.handle(line.text)
		}
	}
}

func (s *server) handle(line string) {
	m, err := Parse(line)
	if err == nil && !s.opts.Mux {
		switch m.Kind {
		case Caps, Open, Data, EOF: // as a server without them answers
			err = fmt.Errorf("%w: unknown verb %q", ErrMalformed, m.Kind)
		}
	}
	if err != nil {
		_ = s.send(Msg{Kind: Error, ID: "*", Text: err.Error()})
		return
	}
	switch m.Kind {
	case Caps:
		_ = s.send(Msg{Kind: Caps, Text: CapMux})
	case Open:
		s.open(m.ID)
	case Data, EOF:
		s.streams.deliver(m)
	case Ping:
		_ = s.send(Msg{Kind: Pong})
	case Watch:
		s.watch(m.ID, m.Path)
	case Unwatch:
		s.mu.Lock()
		s.unwatchLocked(m.ID)
		s.mu.Unlock()
	default:
		_ = s.send(Msg{Kind: Error, ID: "*", Text: fmt.Sprintf("%s is sent by the server, not to it", m.Kind)})
	}
}

// watch starts watching path under id; an earlier watch of id ends first
// (with its ERROR line).
func (s *server) watch(id, path string) {
	gitDir, rerr := s.opts.Resolve(path)
	if rerr == nil {
		gitDir = canonical(gitDir)
	}
	s.mu.Lock()
	s.unwatchLocked(id)
	if len(s.watches) >= s.opts.MaxWatches {
		s.mu.Unlock()
		_ = s.send(Msg{Kind: Error, ID: id, Text: fmt.Sprintf("too many watches (%d)", s.opts.MaxWatches)})
		return
	}
	if rerr != nil {
		s.mu.Unlock()
		_ = s.send(Msg{Kind: Error, ID: id, Text: rerr.Error()})
		return
	}
	e := &entry{id: id}
	r := s.repos[gitDir]
	if r != nil {
		e.repo = r
		r.entries[e] = true
		s.watches[id] = e
		if r.refs != nil {
			_ = s.sendLocked(s.ready(e, r.refs)...)
		}
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	// A new watcher needs a slot; only watchers still stopping can hold
	// them all, since fewer than MaxWatches watches are live.
	select {
	case s.slots <- struct{}{}:
	case <-s.ctx.Done():
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if r = s.repos[gitDir]; r == nil {
		ctx, cancel := context.WithCancel(s.ctx)
		r = &repo{gitDir: gitDir, cancel: cancel, entries: map[*entry]bool{}}
		s.repos[gitDir] = r
		s.wg.Add(1)
		go s.run(ctx, r)
	} else {
		<-s.slots // cannot happen (only this goroutine adds repos); keep the count right
	}
	e.repo = r
	r.entries[e] = true
	s.watches[id] = e
	if r.refs != nil {
		_ = s.sendLocked(s.ready(e, r.refs)...)
	}
}

// canonical makes one repository reached by two spellings one key.
func canonical(dir string) string {
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	return dir
}

// unwatchLocked ends the watch of id, if any, with "ERROR <id> unwatched":
// the client knows that nothing more about the old watch follows, and
// that a new watch under the same id starts after it.
func (s *server) unwatchLocked(id string) {
	e, ok := s.watches[id]
	if !ok {
		return
	}
	delete(s.watches, id)
	r := e.repo
	delete(r.entries, e)
	if len(r.entries) == 0 {
		r.cancel()
		delete(s.repos, r.gitDir)
	}
	_ = s.sendLocked(Msg{Kind: Error, ID: id, Text: "unwatched"})
}

func (s *server) stopAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for dir, r := range s.repos {
		r.cancel()
		delete(s.repos, dir)
	}
	clear(s.watches)
}

// ready lists refs for e and marks it ready.
func (s *server) ready(e *entry, refs watch.Refs) []Msg {
	names := make([]string, 0, len(refs))
	for r := range refs {
		names = append(names, r)
	}
	sort.Strings(names)
	batch := make([]Msg, 0, len(names)+1)
	for _, r := range names {
		batch = append(batch, Msg{Kind: Ref, ID: e.id, SHA: refs[r], Ref: r})
	}
	e.ready = true
	return append(batch, Msg{Kind: Ready, ID: e.id})
}

// run watches one repository for all its entries.
func (s *server) run(ctx context.Context, r *repo) {
	defer s.wg.Done()
	defer func() { <-s.slots }()
	opts := watch.Options{Hub: s.opts.Hub, Logger: s.opts.Logger}
	err := watch.Watch(ctx, r.gitDir, opts, func(u watch.Update) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.repos[r.gitDir] != r {
			return nil // every watch of it ended meanwhile: say nothing
		}
		r.refs = u.Refs
		var batch []Msg
		for e := range r.entries {
			if !e.ready {
				batch = append(batch, s.ready(e, r.refs)...)
				continue
			}
			for _, c := range u.Changes {
				if c.Deleted() {
					batch = append(batch, Msg{Kind: Delete, ID: e.id, Ref: c.Ref})
				} else {
					batch = append(batch, Msg{Kind: Change, ID: e.id, SHA: c.New, Ref: c.Ref})
				}
			}
			batch = append(batch, Msg{Kind: End, ID: e.id})
		}
		return s.sendLocked(batch...)
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.repos[r.gitDir] != r {
		return // unwatched, or the server is ending
	}
	delete(s.repos, r.gitDir)
	r.cancel()
	if err == nil {
		err = errors.New("watch ended")
	}
	s.opts.Logger.Warn("watch ended", "git_dir", r.gitDir, "err", err)
	var batch []Msg
	for e := range r.entries {
		delete(s.watches, e.id)
		batch = append(batch, Msg{Kind: Error, ID: e.id, Text: err.Error()})
	}
	_ = s.sendLocked(batch...)
}

// send writes msgs as one contiguous block.
func (s *server) send(msgs ...Msg) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sendLocked(msgs...)
}

func (s *server) sendLocked(msgs ...Msg) error {
	if len(msgs) == 0 {
		return nil
	}
	lines := make([]string, len(msgs))
	for i, m := range msgs {
		lines[i] = m.String()
	}
	return s.write(lines...)
}

// write writes lines as one contiguous block and flushes it. A write
// error ends the server: the client is gone.
func (s *server) write(lines ...string) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	for _, line := range lines {
		if _, err := s.w.WriteString(line + "\n"); err != nil {
			s.fail(fmt.Errorf("write: %w", err))
			return err
		}
	}
	if err := s.w.Flush(); err != nil {
		s.fail(fmt.Errorf("write: %w", err))
		return err
	}
	return nil
}
