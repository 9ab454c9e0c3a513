package notify

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/internal/gitrepo"
	"github.com/git-remote-daemon/git-remote-daemon/protocol"
	"github.com/git-remote-daemon/git-remote-daemon/watch"
)

// ServerOptions configure Serve.
type ServerOptions struct {
	// Hub is shared by every watched repository; nil polls.
	Hub *watch.Hub
	// Timeout ends the server when no line arrived for that long
	// (default 30s): the client's pings stopped. Negative: never.
	Timeout time.Duration
	// Paths are watched at start, with ids "0", "1", ...
	Paths []string
	// MaxWatches caps the repositories watched at once (default 10000).
	MaxWatches int
	// Resolve maps a WATCH path to a git directory; nil resolves it as
	// git does (gitrepo.FindGitDir). A server for one repository (a th::
	// node) pins every path to it.
	Resolve func(path string) (string, error)
	// Logger receives logs (stderr); nil discards them.
	Logger *slog.Logger
}

// ErrTimeout is returned when the client went silent.
var ErrTimeout = errors.New("no heartbeat from the client")

// Serve speaks the server side of the protocol on in/out until in ends
// (nil), ctx ends (nil), the client goes silent (ErrTimeout) or out
// fails.
func Serve(ctx context.Context, in io.Reader, out io.Writer, opts ServerOptions) error {
	if opts.Timeout == 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.MaxWatches <= 0 {
		opts.MaxWatches = 10000
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	s := &server{ctx: ctx, fail: cancel, opts: opts, w: bufio.NewWriter(out), watches: map[string]context.CancelFunc{}}
	defer s.wg.Wait()
	defer s.stopAll()
	if err := s.write(Banner); err != nil {
		return err
	}
	for i, p := range opts.Paths {
		s.watch(fmt.Sprint(i), p)
	}

	lines := make(chan string)
	readErr := make(chan error, 1)
	go func() {
		r := protocol.NewReader(in)
		for {
			line, err := r.ReadLine()
			if err != nil && !errors.Is(err, protocol.ErrLineTooLong) {
				readErr <- err
				return
			}
			if err != nil {
				line = "" // answered as malformed below
			}
			select {
			case lines <- line:
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
			s.handle(line)
		}
	}
}

type server struct {
	ctx  context.Context
	fail context.CancelCauseFunc
	opts ServerOptions
	wg   sync.WaitGroup

	wmu sync.Mutex
	w   *bufio.Writer

	mu      sync.Mutex
	watches map[string]context.CancelFunc
}

func (s *server) handle(line string) {
	m, err := Parse(line)
	if err != nil {
		_ = s.send(Msg{Kind: Error, ID: "*", Text: err.Error()})
		return
	}
	switch m.Kind {
	case Ping:
		_ = s.send(Msg{Kind: Pong})
	case Watch:
		s.watch(m.ID, m.Path)
	case Unwatch:
		s.unwatch(m.ID)
	default:
		_ = s.send(Msg{Kind: Error, ID: "*", Text: fmt.Sprintf("%s is sent by the server, not to it", m.Kind)})
	}
}

func (s *server) watch(id, path string) {
	s.unwatch(id)
	s.mu.Lock()
	if len(s.watches) >= s.opts.MaxWatches {
		s.mu.Unlock()
		_ = s.send(Msg{Kind: Error, ID: id, Text: fmt.Sprintf("too many watches (%d)", s.opts.MaxWatches)})
		return
	}
	ctx, cancel := context.WithCancel(s.ctx)
	s.watches[id] = cancel
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		err := s.run(ctx, id, path)
		if ctx.Err() != nil {
			return // unwatched, or the server is ending
		}
		s.mu.Lock()
		delete(s.watches, id)
		s.mu.Unlock()
		cancel()
		if err == nil {
			err = errors.New("watch ended")
		}
		s.opts.Logger.Warn("watch ended", "id", id, "path", path, "err", err)
		_ = s.send(Msg{Kind: Error, ID: id, Text: err.Error()})
	}()
}

func (s *server) unwatch(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cancel, ok := s.watches[id]; ok {
		cancel()
		delete(s.watches, id)
	}
}

func (s *server) stopAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, cancel := range s.watches {
		cancel()
		delete(s.watches, id)
	}
}

// run watches one repository and streams its refs and changes.
func (s *server) run(ctx context.Context, id, path string) error {
	resolve := s.opts.Resolve
	if resolve == nil {
		resolve = gitrepo.FindGitDir
	}
	gitDir, err := resolve(path)
	if err != nil {
		return err
	}
	opts := watch.Options{Hub: s.opts.Hub, Logger: s.opts.Logger}
	return watch.Watch(ctx, gitDir, opts, func(u watch.Update) error {
		var batch []Msg
		if u.First {
			refs := make([]string, 0, len(u.Refs))
			for r := range u.Refs {
				refs = append(refs, r)
			}
			sort.Strings(refs)
			for _, r := range refs {
				batch = append(batch, Msg{Kind: Ref, ID: id, SHA: u.Refs[r], Ref: r})
			}
			batch = append(batch, Msg{Kind: Ready, ID: id})
		} else {
			for _, c := range u.Changes {
				if c.Deleted() {
					batch = append(batch, Msg{Kind: Delete, ID: id, Ref: c.Ref})
				} else {
					batch = append(batch, Msg{Kind: Change, ID: id, SHA: c.New, Ref: c.Ref})
				}
			}
			batch = append(batch, Msg{Kind: End, ID: id})
		}
		if ctx.Err() != nil {
			return nil // unwatched meanwhile: say nothing more about id
		}
		return s.send(batch...)
	})
}

// send writes msgs as one contiguous block.
func (s *server) send(msgs ...Msg) error {
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
