package thnode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"syscall"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/internal/gitcfg"
	"github.com/git-remote-daemon/git-remote-daemon/telehash"
	"github.com/git-remote-daemon/git-remote-daemon/watch"
)

// ServiceOptions configure a Service.
type ServiceOptions struct {
	// Dir is where git runs in the repository (its work tree, or the
	// git directory of a bare one); GitDir is the git directory it
	// serves and CommonDir the one shared by its worktrees.
	Dir, GitDir, CommonDir string
	// Hub watches the served repository's refs for notify.
	Hub    *watch.Hub
	Logger *slog.Logger
	// ReadConfig reads the repository's configuration for the allow
	// list's refresh (default gitcfg.Read).
	ReadConfig func(ctx context.Context, dir string) (*gitcfg.Config, error)
	// RefreshEvery is how often the configuration files are checked for
	// a change of the allow list (default 1 s).
	RefreshEvery time.Duration
	// Pairing, if set, is given to every node the service starts.
	Pairing Pairing
}

// Service is a repository's use of its identity's telehash node, owned
// by its daemon: each Configure (at start, and after every RELOAD)
// makes it match the configuration. It runs while
// remotedaemon.thListen is set or a th:: remote exists, moves when the
// listen address, remotedaemon.thIdentity, remotedaemon.thRepo or
// remotedaemon.thLinkTimeout changes, and stops when neither remains.
//
// One node runs per identity and machine (see hostLock): the service
// hosts it when no other process does (it binds the UDP port and the
// lending socket, and serves the repositories other daemons register),
// and otherwise registers its repository with the host, whose node then
// serves it and carries its watchers' streams. When the host stops, one
// of the others takes over within about a second, on the same address.
//
// Between two Configure calls the allow list follows the configuration
// files by itself, so that a peer whose remote is removed is refused
// within about RefreshEvery, and loses the streams it has open; one
// whose remote loses daemonAllowPush loses its pushes (open and to
// come) the same way, and keeps reading.
type Service struct {
	opts  ServiceOptions
	log   *slog.Logger
	allow AllowList

	mu     sync.Mutex // Configure and Close
	cur    *running
	closed bool

	amu     sync.Mutex // the allow list's updates
	gen     uint64     // counts them
	routing Routing    // remotedaemon.thRouter and thRouters, under amu

	lmu     sync.Mutex // the link
	link    Link
	node    *Node         // set when hosting
	changed chan struct{} // closed and replaced when the link changes
}

// running is the node's use for one set of settings: a loop that hosts
// the node or registers with its host, again and again.
type running struct {
	key    nodeSettings
	id     *telehash.Identity
	cancel context.CancelFunc
	done   chan struct{} // closed when its loop returns

	mu   sync.Mutex
	host *hostLink // when registered with another process
}

type nodeSettings struct {
	listen, identity, repoID string
	linkTimeout              time.Duration
	xmpp                     string // XMPPSettings.key
}

// NewService returns a service with no node; Configure starts one.
func NewService(opts ServiceOptions) *Service {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.ReadConfig == nil {
		opts.ReadConfig = gitcfg.Read
	}
	if opts.RefreshEvery <= 0 {
		opts.RefreshEvery = time.Second
	}
	return &Service{opts: opts, log: opts.Logger, changed: make(chan struct{})}
}

// Node returns the running node when this service hosts it, or nil.
func (s *Service) Node() *Node {
	s.lmu.Lock()
	defer s.lmu.Unlock()
	return s.node
}

// Link returns the way to the node (hosted here or elsewhere), or nil.
func (s *Service) Link() Link {
	s.lmu.Lock()
	defer s.lmu.Unlock()
	return s.link
}

// Next waits until this service hosts a node other than old and
// returns it; nil when ctx ends first.
func (s *Service) Next(ctx context.Context, old *Node) *Node {
	for {
		s.lmu.Lock()
		n, changed := s.node, s.changed
		s.lmu.Unlock()
		if n != nil && n != old {
			return n
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
	}
}

// NextLink waits until a link other than old is up and returns it; nil
// when ctx ends first.
func (s *Service) NextLink(ctx context.Context, old Link) Link {
	for {
		s.lmu.Lock()
		l, changed := s.link, s.changed
		s.lmu.Unlock()
		if l != nil && l != old {
			return l
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
	}
}

func (s *Service) setLink(l Link, n *Node) {
	s.lmu.Lock()
	defer s.lmu.Unlock()
	s.link, s.node = l, n
	close(s.changed)
	s.changed = make(chan struct{})
}

// Configure applies cfg: the allow list, then the node's use. ctx
// bounds the life of a node it starts. An error leaves no node when the
// node could not start, and the node as it was when its identity is
// misconfigured.
func (s *Service) Configure(ctx context.Context, cfg *gitcfg.Config) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("telehash node: service closed")
	}
	rt, rerr := ParseRouting(cfg)
	if rerr != nil {
		s.log.Warn("routing configuration", "err", rerr)
	}
	s.amu.Lock()
	revoked := s.allow.Set(cfg)
	s.gen++
	s.routing = rt
	s.amu.Unlock()
	if n := s.Node(); n != nil {
		n.SetRouting(s.opts.GitDir, rt)
	}
	listen, want := listenAddr(cfg)
	if !want {
		if s.cur != nil {
			s.log.Info("telehash node stopped: neither remotedaemon.thListen nor a th:: remote")
		}
		s.stopLocked()
		return nil
	}
	key, err := s.settings(cfg, listen)
	if err != nil {
		s.applyLocked(ctx, revoked)
		return err
	}
	if s.cur != nil && s.cur.key == key {
		s.applyLocked(ctx, revoked)
		return nil
	}
	s.stopLocked()
	return s.startLocked(ctx, key)
}

func (s *Service) settings(cfg *gitcfg.Config, listen string) (nodeSettings, error) {
	id, err := identityPathFor(cfg, s.opts.CommonDir)
	if err != nil {
		return nodeSettings{}, err
	}
	linkTimeout, err := LinkTimeout(cfg)
	if err != nil {
		return nodeSettings{}, err
	}
	repoID, err := RepoID(cfg, s.opts.CommonDir)
	if err != nil {
		return nodeSettings{}, err
	}
	x, _, err := ReadXMPPSettings(cfg)
	if err != nil {
		return nodeSettings{}, err
	}
	return nodeSettings{listen: listen, identity: id, repoID: repoID, linkTimeout: linkTimeout, xmpp: x.key()}, nil
}

// applyLocked enforces the new allow list on the node: here, or by the
// host, which reads the configuration again.
func (s *Service) applyLocked(ctx context.Context, revoked []telehash.Hashname) {
	if n := s.Node(); n != nil {
		n.Revoke(revoked)
		return
	}
	if s.cur == nil {
		return
	}
	s.cur.mu.Lock()
	h := s.cur.host
	s.cur.mu.Unlock()
	if h == nil {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := h.reload(rctx); err != nil {
		s.log.Warn("the node's host could not read the configuration again", "err", err)
	}
}

// firstWait bounds Configure's wait for a node's host that does not
// answer; the service keeps trying after.
const firstWait = 5 * time.Second

func (s *Service) startLocked(ctx context.Context, key nodeSettings) error {
	id, err := LoadOrCreate(key.identity)
	if err != nil {
		return fmt.Errorf("telehash identity: %w", err)
	}
	rctx, cancel := context.WithCancel(ctx)
	r := &running{key: key, id: id, cancel: cancel, done: make(chan struct{})}
	first := make(chan error, 1)
	go s.run(rctx, r, first)
	select {
	case err := <-first:
		if err != nil {
			cancel()
			<-r.done
			return err
		}
	case <-time.After(firstWait):
		s.log.Warn("the process hosting the telehash node of this identity does not answer yet; still trying")
	}
	s.cur = r
	return nil
}

// stopLocked ends the node's use; a node hosted here is closed (its
// port and lending socket free) when it returns.
func (s *Service) stopLocked() {
	r := s.cur
	if r == nil {
		return
	}
	s.cur = nil
	r.cancel()
	<-r.done
}

// Close stops the node's use for good.
func (s *Service) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.stopLocked()
	return nil
}

// retryHost is how often a service waiting for the node's host (one
// that holds the lock but has not opened its socket yet) tries again.
const retryHost = 100 * time.Millisecond

// run hosts the node when the host lock is free, or registers with its
// host, until ctx ends; first gets the outcome of the first attempt.
func (s *Service) run(ctx context.Context, r *running, first chan<- error) {
	defer close(r.done)
	reported := false
	report := func(err error) {
		if !reported {
			reported = true
			first <- err
		}
	}
	var lastWarn string
	for ctx.Err() == nil {
		lock, err := tryHostLock(r.key.identity)
		if err != nil {
			// No locks here (some network file systems): host alone.
			s.log.Warn("cannot lock the telehash node of this identity; hosting it without coordination", "err", err)
		}
		if lock != nil || err != nil {
			err := s.host(ctx, r, lock, report)
			if err != nil {
				if !reported {
					report(err)
					return
				}
				if err.Error() != lastWarn { // said once, not every second
					lastWarn = err.Error()
					s.log.Error("telehash node: cannot take over the node of this identity; trying again", "err", err)
				}
				sleep(ctx, time.Second)
			}
			continue
		}
		l, err := register(ctx, r.id.Hashname(), Registration{Dir: s.opts.Dir, GitDir: s.opts.GitDir, CommonDir: s.opts.CommonDir, Listen: r.key.listen})
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
				sleep(ctx, retryHost) // the host is starting, or just stopped
				continue
			}
			if err.Error() != lastWarn {
				lastWarn = err.Error()
				s.log.Warn("cannot use the telehash node of this identity's host; trying again", "err", err)
			}
			sleep(ctx, time.Second)
			continue
		}
		lastWarn = ""
		s.log.Info("serving on telehash through the node of another process", "hashname", r.id.Hashname(), "udp", l.reg.addr)
		s.warnListen(r.key.listen, l.reg.addr)
		r.mu.Lock()
		r.host = l
		r.mu.Unlock()
		s.setLink(l, nil)
		report(nil)
		select {
		case <-ctx.Done():
		case <-l.done:
			s.log.Info("the process hosting the telehash node went away; taking over or moving to the new host")
		}
		s.setLink(nil, nil)
		r.mu.Lock()
		r.host = nil
		r.mu.Unlock()
		l.close()
	}
	report(ctx.Err())
}

// currentRouting is the routing of the last configuration read.
func (s *Service) currentRouting() Routing {
	s.amu.Lock()
	defer s.amu.Unlock()
	return s.routing
}

// refresh keeps the allow list in step with the configuration files
// while node runs: when one of them changed (checked every
// RefreshEvery, a few stat calls), the configuration is read again, off
// the mesh's read loop, and peers no longer named lose their streams,
// peers no longer allowed to push their pushes.
func (s *Service) refresh(node *Node) {
	ctx := node.ctx
	files := configFiles(s.opts.GitDir, s.opts.CommonDir)
	seen := filesSignature(files)
	t := time.NewTicker(s.opts.RefreshEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := filesSignature(files)
		if now == seen {
			continue
		}
		s.amu.Lock()
		gen := s.gen
		s.amu.Unlock()
		cfg, err := s.opts.ReadConfig(ctx, s.opts.Dir)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("re-reading the configuration for the th:: allow list", "err", err)
			}
			continue // tried again at the next tick
		}
		seen = now
		rt, rerr := ParseRouting(cfg)
		if rerr != nil {
			s.log.Warn("routing configuration", "err", rerr)
		}
		s.amu.Lock()
		var revoked []telehash.Hashname
		if s.gen == gen { // not overtaken by a Configure
			revoked = s.allow.Set(cfg)
			s.gen++
			s.routing = rt
			node.SetRouting(s.opts.GitDir, rt)
		}
		s.amu.Unlock()
		node.Revoke(revoked)
	}
}
