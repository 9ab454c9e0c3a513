package thnode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
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

// Service is a repository's telehash node, owned by its daemon: each
// Configure (at start, and after every RELOAD) makes the node match the
// configuration. It runs while remotedaemon.thListen is set or a th::
// remote exists, moves (the old node closes, then the new one binds)
// when the listen address, remotedaemon.thIdentity or
// remotedaemon.thLinkTimeout changes, and stops
// when neither remains. Between two Configure calls the allow list
// follows the configuration files by itself, so that a peer whose
// remote is removed is refused within about RefreshEvery, and loses the
// streams it has open; one whose remote loses daemonAllowPush loses its
// pushes (open and to come) the same way, and keeps reading.
type Service struct {
	opts  ServiceOptions
	log   *slog.Logger
	allow AllowList
	node  atomic.Pointer[Node]

	mu      sync.Mutex
	cur     *running
	gen     uint64        // counts the allow list's updates
	changed chan struct{} // closed and replaced when the node changes
	closed  bool
}

// running is the current node and what it was started with.
type running struct {
	node *Node
	key  nodeSettings
	done chan struct{} // closed when its refresh loop returns
}

type nodeSettings struct {
	listen, identity string
	linkTimeout      time.Duration
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

// Node returns the running node, or nil.
func (s *Service) Node() *Node { return s.node.Load() }

// Next waits until a node other than old runs and returns it; nil when
// ctx ends first.
func (s *Service) Next(ctx context.Context, old *Node) *Node {
	for {
		s.mu.Lock()
		n, changed := s.node.Load(), s.changed
		s.mu.Unlock()
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

// setNodeLocked makes n the current node and wakes Next.
func (s *Service) setNodeLocked(n *Node) {
	s.node.Store(n)
	close(s.changed)
	s.changed = make(chan struct{})
}

// Configure applies cfg: the allow list, then the node's life. ctx
// bounds the life of a node it starts. An error leaves no node when the
// node could not start, and the node as it was when its identity is
// misconfigured.
func (s *Service) Configure(ctx context.Context, cfg *gitcfg.Config) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("telehash node: service closed")
	}
	revoked := s.allow.Set(cfg)
	s.gen++
	listen, want := listenAddr(cfg)
	if !want {
		if s.cur != nil {
			s.log.Info("telehash node stopped: neither remotedaemon.thListen nor a th:: remote")
		}
		s.stopLocked()
		return nil
	}
	id, err := identityPathFor(cfg, s.opts.CommonDir)
	if err != nil {
		s.revokeLocked(revoked)
		return err
	}
	linkTimeout, err := LinkTimeout(cfg)
	if err != nil {
		s.revokeLocked(revoked)
		return err
	}
	key := nodeSettings{listen: listen, identity: id, linkTimeout: linkTimeout}
	if s.cur != nil && s.cur.key == key {
		s.revokeLocked(revoked)
		return nil
	}
	s.stopLocked()
	return s.startLocked(ctx, key)
}

func (s *Service) revokeLocked(revoked []telehash.Hashname) {
	if s.cur != nil {
		s.cur.node.Revoke(revoked)
	}
}

func (s *Service) startLocked(ctx context.Context, key nodeSettings) error {
	id, err := LoadOrCreate(key.identity)
	if err != nil {
		return fmt.Errorf("telehash identity: %w", err)
	}
	node, err := Start(ctx, Options{Identity: id, Listen: key.listen, GitDir: s.opts.GitDir, Hub: s.opts.Hub,
		LinkTimeout: key.linkTimeout, Logger: s.log, Permission: s.allow.Permission, Pairing: s.opts.Pairing})
	if err != nil {
		return fmt.Errorf("remotedaemon.thListen %s: %w", key.listen, err)
	}
	if err := node.ServeLocal(); err != nil {
		s.log.Warn("cannot lend the node to git-remote-th", "err", err)
	}
	s.log.Info("serving on telehash", "hashname", id.Hashname(), "udp", node.Mesh.Addr())
	r := &running{node: node, key: key, done: make(chan struct{})}
	s.cur = r
	s.setNodeLocked(node)
	go func() {
		defer close(r.done)
		s.refresh(node)
	}()
	return nil
}

// stopLocked closes the current node; its port and lending socket are
// free when it returns.
func (s *Service) stopLocked() {
	r := s.cur
	if r == nil {
		return
	}
	s.cur = nil
	s.setNodeLocked(nil)
	if err := r.node.Close(); err != nil {
		s.log.Debug("closing the telehash node", "err", err)
	}
}

// Close stops the node for good.
func (s *Service) Close() error {
	s.mu.Lock()
	s.closed = true
	r := s.cur
	s.stopLocked()
	s.mu.Unlock()
	if r != nil {
		<-r.done // its refresh loop ends with the node's context
	}
	return nil
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
		s.mu.Lock()
		gen := s.gen
		s.mu.Unlock()
		cfg, err := s.opts.ReadConfig(ctx, s.opts.Dir)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("re-reading the configuration for the th:: allow list", "err", err)
			}
			continue // tried again at the next tick
		}
		seen = now
		s.mu.Lock()
		if s.gen == gen && s.cur != nil && s.cur.node == node { // not overtaken by a Configure
			revoked := s.allow.Set(cfg)
			s.gen++
			node.Revoke(revoked)
		}
		s.mu.Unlock()
	}
}
