// Package daemon is git-remote-daemon's core: it watches every remote of a
// repository through its transport, reports connections and changes as
// stdio protocol messages, performs each remote's configured action
// (fetch, pull, none), pushes on request or on local changes, and obeys
// PAUSE, RESUME, PUSH and RELOAD.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/internal/backoff"
	"github.com/git-remote-daemon/git-remote-daemon/internal/gitcfg"
	"github.com/git-remote-daemon/git-remote-daemon/internal/redact"
	"github.com/git-remote-daemon/git-remote-daemon/internal/supervise"
	"github.com/git-remote-daemon/git-remote-daemon/internal/transport"
	"github.com/git-remote-daemon/git-remote-daemon/protocol"
	"github.com/git-remote-daemon/git-remote-daemon/watch"
)

// Emitter receives the messages the daemon emits.
type Emitter interface {
	Emit(protocol.Message)
}

// Options configure a Daemon.
type Options struct {
	// Dir is any directory inside the repository.
	Dir string
	// Transports maps each kind of remote to the dialer that watches it.
	Transports transport.Registry
	// Hub watches the repository's own refs (for remote.<name>.daemonPush);
	// nil means polling.
	Hub *watch.Hub
	// Out receives every emitted message.
	Out Emitter
	// Logger receives logs; nil discards them.
	Logger *slog.Logger
	// StatusFile, when set, is rewritten with the status of every remote
	// after each event (read by `git-remote-daemon status`).
	StatusFile string
	// Supervisor, when set, runs the daemon's long-lived parts (a runner
	// per remote, the watch of the repository's own refs) beside the
	// program's others; it must be served (Serve) by the caller. Nil: the
	// daemon serves one of its own during Serve.
	Supervisor *supervise.Supervisor
	// Configure, when set, is called with the configuration before the
	// remotes start and again after every RELOAD that read it, before the
	// remotes are restarted: services that follow remotedaemon.* (the
	// telehash node) start, move or stop there. An error is reported as
	// `ERROR *` and the remotes run anyway.
	Configure func(ctx context.Context, cfg *gitcfg.Config) error
	// Started, when set, is called once by Serve when every remote has
	// started (the status file lists them all): a background daemon
	// reports itself up there, so a `status` right after lists them.
	Started func()
	// MinBackoff and MaxBackoff bound the reconnect delay (defaults 1s
	// and 3m); a connection that stayed up for StableAfter (default 1m)
	// resets it.
	MinBackoff, MaxBackoff, StableAfter time.Duration
	// MaxFetches bounds the fetches (and pulls) of different remotes
	// that run at once (default DefaultMaxFetches). A remote's changes
	// that come while its fetch waits for its turn, or runs, make one
	// fetch after it.
	MaxFetches int

	// clock, when set, replaces the real time of the backoff waits and
	// the StableAfter checks (tests).
	clock clock
	// watchSelf, when set, replaces the watch of the repository's own
	// refs (tests).
	watchSelf func(ctx context.Context, fn func(watch.Update) error) error
}

// DefaultMaxFetches is how many remotes are fetched at once, at most:
// a burst of changes over many remotes fetches them side by side without
// starting hundreds of git processes at once.
const DefaultMaxFetches = 4

// clock is the daemon's time: tests drive a fake one, so that backoffs
// of minutes take no time.
type clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Daemon watches the remotes of one repository.
type Daemon struct {
	opts  Options
	repo  Repo
	log   *slog.Logger
	book  *book
	clock clock

	pullTurn  chan struct{} // one pull at a time moves local branches: hold by sending
	fetchTurn chan struct{} // bounds the fetches running at once: hold by sending
	local     localRefs     // the repository's own refs, one listing for many runners
	pushes    pushQueue
	reported  reported // the ERRORs emitted, once per cause
	cfg       atomic.Pointer[gitcfg.Config]

	// mu is held by the command loop only; runners never take it, so the
	// loop may wait for a runner to stop while holding it.
	mu      sync.Mutex
	ctx     context.Context
	runners map[string]*runner
	paused  bool
	self    bool // the watch of the repository's own refs runs
	sup     *supervise.Supervisor
}

// New finds the repository and reads its configuration.
func New(ctx context.Context, opts Options) (*Daemon, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	opts.Logger = slog.New(redact.Handler(opts.Logger.Handler()))
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = time.Second
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 3 * time.Minute
	}
	if opts.StableAfter <= 0 {
		opts.StableAfter = time.Minute
	}
	if opts.MaxFetches <= 0 {
		opts.MaxFetches = DefaultMaxFetches
	}
	if opts.clock == nil {
		opts.clock = realClock{}
	}
	repo, err := FindRepo(ctx, opts.Dir)
	if err != nil {
		return nil, err
	}
	cfg, err := gitcfg.Read(ctx, repo.Dir)
	if err != nil {
		return nil, err
	}
	d := &Daemon{opts: opts, repo: repo, log: opts.Logger, book: newBook(opts.StatusFile),
		clock: opts.clock, runners: map[string]*runner{}, pullTurn: make(chan struct{}, 1), sup: opts.Supervisor}
	if d.sup == nil {
		d.sup = supervise.New(supervise.Options{Logger: opts.Logger})
	}
	if d.opts.watchSelf == nil {
		d.opts.watchSelf = func(ctx context.Context, fn func(watch.Update) error) error {
			return watch.Watch(ctx, filepath.Clean(d.repo.CommonDir), watch.Options{Hub: d.opts.Hub, Logger: d.log}, fn)
		}
	}
	d.local.read = func(ctx context.Context) (watch.Refs, error) { return watch.Read(ctx, d.repo.CommonDir) }
	d.fetchTurn = make(chan struct{}, opts.MaxFetches)
	d.cfg.Store(cfg)
	return d, nil
}

// Status returns the daemon's live status: what the status file says
// when it could be written.
func (d *Daemon) Status() Report {
	d.book.mu.Lock()
	defer d.book.mu.Unlock()
	return d.book.snapshot()
}

// Repo returns the repository the daemon runs in.
func (d *Daemon) Repo() Repo { return d.repo }

// Serve runs the daemon until ctx ends or cmds is closed (stdin reached
// its end), handling each command as it comes. A nil cmds means no
// commands (background mode).
func (d *Daemon) Serve(ctx context.Context, cmds <-chan protocol.Message) error {
	if d.opts.Supervisor == nil { // serve our own, stopped after the runners
		supCtx, stopSup := context.WithCancel(context.WithoutCancel(ctx))
		served := make(chan struct{})
		go func() { defer close(served); _ = d.sup.Serve(supCtx) }()
		defer func() { stopSup(); <-served }()
	}
	d.mu.Lock()
	d.ctx = ctx
	d.configureLocked(d.config())
	d.startAllLocked()
	d.mu.Unlock()
	d.book.flush() // the file lists every remote before the start is reported
	if d.opts.Started != nil {
		d.opts.Started()
	}
	defer func() {
		d.mu.Lock()
		d.stopAllLocked()
		d.mu.Unlock()
		d.book.flush()
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case m, ok := <-cmds:
			if !ok {
				return nil
			}
			d.handle(m)
		}
	}
}

func (d *Daemon) handle(m protocol.Message) {
	d.log.Debug("command", "line", m.String())
	d.mu.Lock()
	defer d.mu.Unlock()
	switch m := m.(type) {
	case protocol.Pause:
		if d.paused {
			return
		}
		d.paused = true
		d.book.setPaused(true)
		d.stopAllLocked()
	case protocol.Resume:
		if !d.paused {
			for _, r := range d.runners { // the network is back: retry now
				r.kickNow()
			}
			return
		}
		d.paused = false
		d.book.setPaused(false)
		d.startAllLocked()
	case protocol.Push:
		rc, ok := d.remote(m.Remote)
		switch {
		case m.Remote == protocol.Daemon:
			d.emit(protocol.Error{Remote: protocol.Daemon, Text: ErrPushDaemon.Error()})
		case !ok:
			d.emit(protocol.Error{Remote: m.Remote, Text: "PUSH: no such remote"})
		case rc.Err != nil:
			d.emit(protocol.Error{Remote: m.Remote, Text: "PUSH: " + rc.Err.Error()})
		default:
			d.pushes.ask(m.Remote)
		}
	case protocol.Reload:
		d.reloadLocked()
	default:
		d.emit(protocol.Error{Remote: protocol.Daemon, Text: fmt.Sprintf("%s is not a command", m.Verb())})
	}
}

// ErrPushDaemon answers `PUSH *`: `*` is the name the protocol gives the
// daemon itself, never a remote's.
var ErrPushDaemon = errors.New("PUSH: * is not a remote: PUSH takes the name of a remote")

// remote returns the configuration of the named remote.
func (d *Daemon) remote(name string) (gitcfg.Remote, bool) {
	for _, r := range d.config().Remotes() {
		if r.Name == name {
			return r, true
		}
	}
	return gitcfg.Remote{}, false
}

// emit records a message in the status book and sends it out: whoever
// reads the message finds the status file saying so.
func (d *Daemon) emit(m protocol.Message) {
	m = redactMessage(m)
	d.book.apply(m)
	d.opts.Out.Emit(m)
}

func (d *Daemon) startAllLocked() {
	for _, rc := range d.config().Remotes() {
		d.startLocked(rc)
	}
	d.startSelfLocked()
}

func (d *Daemon) stopAllLocked() {
	d.stopSelfLocked()
	var wg sync.WaitGroup
	for name, r := range d.runners {
		wg.Add(1)
		go func() { defer wg.Done(); r.stop() }()
		delete(d.runners, name)
	}
	wg.Wait()
}

func (d *Daemon) startLocked(rc gitcfg.Remote) {
	r := newRunner(d, rc)
	d.runners[rc.Name] = r
	r.start()
}

// reloadLocked re-reads the configuration: removed remotes stop (and
// their state is forgotten), added ones start, and those whose settings
// changed restart; a change of remotedaemon.* restarts them all. The
// others are left alone, their reconnect delay skipped. Only the remotes
// with daemonPush that started or restarted push (at their connect, or
// now when not watched); the watch of the repository's own refs runs on,
// so a RELOAD does not make every other remote push.
func (d *Daemon) reloadLocked() {
	cfg, err := gitcfg.Read(d.ctx, d.repo.Dir)
	if err != nil {
		if d.ctx.Err() != nil {
			return // the daemon is stopping: no error of anyone's
		}
		d.emit(protocol.Error{Remote: protocol.Daemon, Text: "RELOAD: " + err.Error()})
		return
	}
	old := d.cfg.Swap(cfg)
	d.configureLocked(cfg)
	globalChanged := !sameSettings(globalSettings(old), globalSettings(cfg))
	fresh := map[string]gitcfg.Remote{}
	for _, rc := range cfg.Remotes() {
		fresh[rc.Name] = rc
	}
	var started []gitcfg.Remote
	for name, r := range d.runners {
		rc, ok := fresh[name]
		switch {
		case !ok:
			r.stop()
			delete(d.runners, name)
			d.pushes.drop(name)
			d.book.remove(name)
			d.reported.forget(name)
			forgetKnown(d.repo.CommonDir, name)
		case globalChanged || !r.cfg.Equal(rc):
			r.stop()
			d.startLocked(rc)
			started = append(started, rc)
		default:
			r.kickNow()
		}
	}
	if d.paused {
		return
	}
	for name, rc := range fresh {
		if _, ok := d.runners[name]; !ok {
			d.startLocked(rc)
			started = append(started, rc)
		}
	}
	if !d.wantSelfLocked() {
		d.stopSelfLocked()
		return
	}
	if !d.self {
		d.startSelfLocked() // its first update asks every remote with daemonPush: all started now
		return
	}
	for _, rc := range started {
		if rc.Push && rc.Err == nil {
			d.pushes.request(rc.Name)
		}
	}
}

// configureLocked hands cfg to the services that follow it.
func (d *Daemon) configureLocked(cfg *gitcfg.Config) {
	if d.opts.Configure == nil {
		return
	}
	if err := d.opts.Configure(d.ctx, cfg); err != nil && d.ctx.Err() == nil {
		d.emit(protocol.Error{Remote: protocol.Daemon, Text: err.Error()})
	}
}

func globalSettings(c *gitcfg.Config) map[string][]string {
	out := map[string][]string{}
	for _, k := range c.Keys() {
		if strings.HasPrefix(k, "remotedaemon.") {
			out[k] = c.GetAll(k)
		}
	}
	return out
}

func sameSettings(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if fmt.Sprint(v) != fmt.Sprint(b[k]) {
			return false
		}
	}
	return true
}

// requestPushes asks for a push to every remote with daemonPush set.
func (d *Daemon) requestPushes() {
	for _, rc := range d.config().Remotes() {
		if rc.Push && rc.Err == nil {
			d.pushes.request(rc.Name)
		}
	}
}

func (d *Daemon) config() *gitcfg.Config { return d.cfg.Load() }

// wantSelfLocked reports whether a running remote has daemonPush.
func (d *Daemon) wantSelfLocked() bool {
	for _, r := range d.runners {
		if r.cfg.Push && r.cfg.Err == nil {
			return true
		}
	}
	return false
}

// selfService is the name of the watch of the repository's own branches
// and tags, which remotes with daemonPush need.
const selfService = "own refs"

func (d *Daemon) startSelfLocked() {
	if !d.wantSelfLocked() || d.self {
		return
	}
	d.self = true
	d.sup.Add(selfService, supervise.Func(d.watchOwnRefs))
}

// watchOwnRefs watches the repository's own refs until ctx ends,
// retrying with backoff, and asks for a push of every remote with
// daemonPush when they change.
func (d *Daemon) watchOwnRefs(ctx context.Context) error {
	b := d.newBackoff()
	for {
		began := d.clock.Now()
		err := d.opts.watchSelf(ctx, func(u watch.Update) error {
			if u.First || pushable(u.Changes) {
				d.requestPushes() // at start: what changed while not watched
			}
			return nil
		})
		if ctx.Err() != nil {
			return nil
		}
		b.Done(d.clock.Now().Sub(began))
		d.log.Error("watching the repository's own refs", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-d.clock.After(b.Next()):
		}
	}
}

// newBackoff returns the reconnect delays of Options.
func (d *Daemon) newBackoff() backoff.Backoff {
	return backoff.Backoff{Min: d.opts.MinBackoff, Max: d.opts.MaxBackoff, StableAfter: d.opts.StableAfter}
}

func (d *Daemon) stopSelfLocked() {
	if d.self {
		d.sup.Remove(selfService)
		d.self = false
	}
}

// pushable reports whether changes touch refs that a push carries.
func pushable(changes []watch.Change) bool {
	for _, c := range changes {
		if strings.HasPrefix(c.Ref, "refs/heads/") || strings.HasPrefix(c.Ref, "refs/tags/") {
			return true
		}
	}
	return false
}
