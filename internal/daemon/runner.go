package daemon

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/internal/gitcfg"
	"github.com/git-remote-daemon/git-remote-daemon/internal/transport"
	"github.com/git-remote-daemon/git-remote-daemon/protocol"
	"github.com/git-remote-daemon/git-remote-daemon/watch"
)

// runner watches one remote and performs its actions. It is supervised:
// a lost connection is retried with backoff, and nothing it does affects
// other remotes.
type runner struct {
	d    *Daemon
	cfg  gitcfg.Remote
	kind transport.Kind

	wake  chan struct{} // the worker has something to do
	kick  chan struct{} // reconnect now, skipping the backoff
	again chan struct{} // retry a failed action or push now, skipping the backoff

	mu          sync.Mutex
	watcher     transport.Watcher
	watched     bool
	connected   bool
	connectedAt time.Time
	seen        watch.Refs // the remote's refs as last reported
	pending     *actionReq // a change not acted on yet
	held        *actionReq // a change whose action failed, to try again
	// expect holds, while a push runs, the object name each ref it
	// pushes to gets ("" deleted): the watcher seeing them is no change.
	expect map[string]string
}

// actionReq is a coalesced request to act on the remote's refs.
type actionReq struct {
	refs  watch.Refs
	prune bool
	// envs are the git environments (see transport.GitEnver) of the
	// changes coalesced here, captured when each change was reported,
	// oldest first, each once: a remote with several nodes is fetched
	// from the node of each change, the latest last, so the node whose
	// change was acted on is the one fetched from (not whichever node
	// changed since), and the last word is the latest change's node.
	envs [][]string
}

// addEnv records the environment of one more change.
func (a *actionReq) addEnv(env []string) {
	if env == nil {
		return
	}
	a.envs = slices.DeleteFunc(a.envs, func(e []string) bool { return slices.Equal(e, env) })
	a.envs = append(a.envs, env)
}

func newRunner(d *Daemon, cfg gitcfg.Remote) *runner {
	return &runner{d: d, cfg: cfg, kind: transport.Classify(cfg.URL),
		wake: make(chan struct{}, 1), kick: make(chan struct{}, 1), again: make(chan struct{}, 1)}
}

// start sets the runner up and adds it to the daemon's supervisor, which
// runs it (Serve) until stop.
func (r *runner) start() {
	name := r.cfg.Name
	r.d.book.update(name, func(s *RemoteStatus) {
		s.URL, s.Transport, s.State = redactURL(r.cfg.URL), string(r.kind), StateConnecting
	})
	if r.cfg.Err != nil {
		r.d.book.update(name, func(s *RemoteStatus) { s.State = StateNotWatched })
		r.reportError("config", r.cfg.Err.Error())
		return
	}
	var w transport.Watcher
	if r.cfg.Watch {
		env := transport.Env{Dir: r.d.repo.Dir, Config: r.d.config(), Report: reporter{r}, Logger: r.d.log.With("remote", name)}
		var err error
		w, _, err = r.d.opts.Transports.NewWatcher(r.cfg, env)
		if err != nil {
			w = nil
			if errors.Is(err, transport.ErrUnsupported) {
				r.report("watcher", protocol.Status{Remote: name, Text: "not watched: " + err.Error()})
			} else {
				r.reportError("watcher", err.Error())
			}
		}
	}
	r.watched, r.watcher = w != nil, w
	if !r.watched {
		r.d.book.update(name, func(s *RemoteStatus) { s.State = StateNotWatched })
	}
	r.d.pushes.register(name, r.poke)
	r.d.sup.Add(r.service(), r)
	r.poke() // a PUSH may have been requested while stopped
}

// service is the runner's name under the supervisor.
func (r *runner) service() string { return "remote " + r.cfg.Name }

// Serve performs the remote's actions and, when it is watched, keeps it
// watched, until ctx ends.
func (r *runner) Serve(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); r.work(ctx) }()
	if r.watched {
		wg.Add(1)
		go func() { defer wg.Done(); r.watchLoop(ctx, r.watcher) }()
	}
	wg.Wait()
	return nil
}

// stop ends the runner; DISCONNECTED has been emitted when it returns.
func (r *runner) stop() {
	r.d.sup.Remove(r.service())
	r.d.pushes.register(r.cfg.Name, nil)
}

func (r *runner) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// kickNow makes the runner retry at once what failed: the connection,
// and a failed action or push.
func (r *runner) kickNow() {
	for _, ch := range []chan struct{}{r.kick, r.again} {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// report emits m (an ERROR, or a STATUS saying what the remote waits
// for) unless the last message of the same cause said the same: a retry
// that fails the same way, even in a runner started again since (PAUSE
// and RESUME), says nothing new.
func (r *runner) report(cause string, m protocol.Message) {
	if r.d.reported.first(r.cfg, cause, m.String()) {
		r.d.emit(m)
		return
	}
	r.d.log.Debug("already reported", "remote", r.cfg.Name, "line", m.String())
}

func (r *runner) reportError(cause, text string) {
	r.report(cause, protocol.Error{Remote: r.cfg.Name, Text: text})
}

type reporter struct{ r *runner }

func (rp reporter) Status(text string) {
	rp.r.d.emit(protocol.Status{Remote: rp.r.cfg.Name, Text: text})
}

// watchLoop keeps the remote watched, reconnecting with exponential
// backoff and jitter. The delay is reset by a connection that lasted
// StableAfter and by a kick (RESUME, RELOAD); a transport.RetryAfter
// error makes it at least its After. An error is reported once, not at
// every retry, until the remote connects again or fails differently; a
// transport.Transient error is no ERROR but a STATUS saying what the
// daemon waits for, and its Wake (the peer is back) ends the wait.
func (r *runner) watchLoop(ctx context.Context, w transport.Watcher) {
	name := r.cfg.Name
	b := r.d.newBackoff()
	for {
		err := w.Watch(ctx, func(u watch.Update) error { return r.update(ctx, u) })
		r.mu.Lock()
		was, since := r.connected, r.connectedAt
		r.connected = false
		r.mu.Unlock()
		if was {
			r.d.emit(protocol.Disconnected{Remote: name})
			b.Done(r.d.clock.Now().Sub(since))
		}
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			err = errors.New("connection closed")
		}
		wait := b.Next()
		var ra *transport.RetryAfter
		if errors.As(err, &ra) && ra.After > wait {
			wait = ra.After
		}
		var tr *transport.Transient
		if errors.As(err, &tr) && tr.Now {
			wait = 0
		}
		if errors.As(err, &tr) && tr.Max > 0 && wait > tr.Max {
			wait = tr.Max
		}
		var wake <-chan struct{}
		if errors.As(err, &tr) {
			wake = tr.Wake
			r.report("watch", protocol.Status{Remote: name, Text: "waiting: " + tr.Waiting})
		} else {
			r.reportError("watch", err.Error())
		}
		r.d.log.Info("reconnecting", "remote", name, "in", wait.Round(time.Millisecond), "err", err)
		select {
		case <-ctx.Done():
			return
		case <-r.kick:
			b.Reset()
		case <-wake:
			r.d.log.Info("reconnecting now: the peer is back", "remote", name)
			b.Reset()
		case <-r.d.clock.After(wait):
		}
	}
}

// update handles what the watcher saw: on connect, the remote's refs are
// compared with those last acted on (so changes made while disconnected
// are not lost); afterwards, with those last reported.
func (r *runner) update(ctx context.Context, u watch.Update) error {
	name := r.cfg.Name
	u.Refs = r.fetched(u.Refs)
	r.mu.Lock()
	first := !r.connected
	r.mu.Unlock()
	if first {
		known, err := r.known(ctx, u.Refs)
		if err != nil {
			return err
		}
		r.mu.Lock()
		r.connected, r.connectedAt, r.seen = true, r.d.clock.Now(), known
		r.mu.Unlock()
		select { // a kick while disconnected is spent; none is left for later
		case <-r.kick:
		default:
		}
		r.d.reported.clear(name, "watch")
		r.d.emit(protocol.Connected{Remote: name})
		if r.cfg.Push {
			r.d.pushes.request(name) // local changes made while disconnected
		}
	}
	env := r.gitEnv() // now: the node of this change (see transport.GitEnver)
	r.mu.Lock()
	changes := r.notOwn(watch.Diff(r.seen, u.Refs))
	r.seen = u.Refs
	if len(changes) > 0 {
		req := r.pending
		if req == nil {
			req = &actionReq{}
		}
		req.refs = u.Refs
		for _, c := range changes {
			req.prune = req.prune || c.Deleted()
		}
		req.addEnv(env)
		r.pending = req
	}
	r.mu.Unlock()
	if len(changes) > 0 {
		r.d.emit(protocol.Changed{Remote: name, SHAs: newSHAs(changes)})
	}
	r.poke()
	return nil
}

// fetched keeps the refs a fetch from the remote brings: those its fetch
// refspecs map, and tags (which git follows). A change to anything else
// (a peer's own remote-tracking refs, say) is not the user's business.
// Without fetch refspecs every ref counts.
func (r *runner) fetched(refs watch.Refs) watch.Refs {
	specs := parseRefspecs(r.d.config().GetAll("remote." + r.cfg.Name + ".fetch"))
	if len(specs) == 0 {
		return refs
	}
	out := make(watch.Refs, len(refs))
	for ref, sha := range refs {
		if _, ok := mapRef(specs, ref); ok || strings.HasPrefix(ref, "refs/tags/") {
			out[ref] = sha
		}
	}
	return out
}

// known returns the refs last acted on, or derives them from the
// remote-tracking refs on the first run.
func (r *runner) known(ctx context.Context, remote watch.Refs) (watch.Refs, error) {
	known, ok, err := loadKnown(r.d.repo.CommonDir, r.cfg.Name)
	if err != nil {
		r.d.log.Warn("ignoring unreadable state", "remote", r.cfg.Name, "err", err)
	}
	if ok {
		return known, nil
	}
	local, err := r.d.local.get(ctx)
	if err != nil {
		return nil, err
	}
	specs := parseRefspecs(r.d.config().GetAll("remote." + r.cfg.Name + ".fetch"))
	return deriveKnown(remote, local, specs), nil
}

// newSHAs lists the new object names of changes, once each; a deletion
// gives the all-zero name.
func newSHAs(changes []watch.Change) []string {
	seen := map[string]bool{}
	var out []string
	for _, c := range changes {
		sha := c.New
		if sha == "" {
			sha = strings.Repeat("0", len(c.Old))
		}
		if !seen[sha] {
			seen[sha] = true
			out = append(out, sha)
		}
	}
	return out
}

// pushEnv is the environment of a push: gitEnv, unless the watcher
// says otherwise (a remote of several nodes: a push goes to all).
func (r *runner) pushEnv() []string {
	if pe, ok := r.watcher.(transport.PushEnver); ok {
		return pe.PushEnv()
	}
	return r.gitEnv()
}

// gitEnv lets git commands for the remote share the watcher's connection.
func (r *runner) gitEnv() []string {
	if ge, ok := r.watcher.(transport.GitEnver); ok {
		return ge.GitEnv()
	}
	return nil
}
