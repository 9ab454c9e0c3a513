// Package thnode is a git node on telehash: it serves repositories to
// authorized peers (git's pack protocol through the helper package, and
// ref change notifications through the notify package), each on a
// telehash "stream" channel whose request names the service, and the
// repository when the node serves several that allow the peer:
//
//	{"service":"git"}                  helper frames: the real upload-pack/receive-pack
//	{"service":"notify"}               the notify protocol, every WATCH pinned to the repository
//	{"service":"git","repo":"<id>"}    the same, for the repository named <id> (see RepoID)
//
// and dials such services on other nodes. One node runs per identity and
// machine, shared by every daemon and git-remote-th of that identity
// (see Service and Client): the first to start hosts it, the others use
// it through its local socket, and one of them takes over when it stops.
package thnode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/helper"
	"github.com/git-remote-daemon/git-remote-daemon/internal/gitcfg"
	"github.com/git-remote-daemon/git-remote-daemon/internal/notify"
	"github.com/git-remote-daemon/git-remote-daemon/telehash"
	"github.com/git-remote-daemon/git-remote-daemon/watch"
)

// The services a node offers.
const (
	ServiceGit    = "git"
	ServiceNotify = "notify"
	// ServicePair is pairing (internal/pairing): the only service a
	// node that no remote names may open, and only while Pairing
	// admits it.
	ServicePair = "pair"
)

// Pairing is the hook of pairing into a node: while an invitation is
// open, Admit lets peers that no remote names link (they may open the
// pair service and nothing else), and ServePair serves the pair streams.
type Pairing interface {
	Admit(peer telehash.Hashname) bool
	ServePair(ctx context.Context, n *Node, peer telehash.Hashname, s io.ReadWriter) error
}

// request is the JSON head of a stream channel's open.
type request struct {
	Service string `json:"service"`
	Repo    string `json:"repo,omitempty"`
}

// Options configure a node.
type Options struct {
	Identity *telehash.Identity
	// Listen is the UDP address to bind (remotedaemon.thListen).
	Listen string
	// Allow says whether a peer may link to us and use our services:
	// only peers named in one of the repository's th:: remotes. Such a
	// peer may read (fetch and watch), not push, unless Permission says
	// more.
	Allow func(telehash.Hashname) bool
	// Permission, if set, replaces Allow: what each peer may do (None
	// refuses its handshakes).
	Permission func(telehash.Hashname) Permission
	// GitDir is the served repository's git directory ("" serves none
	// at start; AddRepo adds repositories).
	GitDir string
	// RepoID names that repository in requests (see RepoID).
	RepoID string
	// Hub watches the served repository's refs for notify.
	Hub    *watch.Hub
	Logger *slog.Logger
	// LinkTimeout bounds a link attempt (default 30 s, the handshake
	// give-up time of the spec).
	LinkTimeout time.Duration
	// ReadConfig reads the configuration of a repository registered by
	// another daemon (default gitcfg.Read); RefreshEvery is how often its
	// files are checked for a change (default 1 s).
	ReadConfig   func(ctx context.Context, dir string) (*gitcfg.Config, error)
	RefreshEvery time.Duration
	// OnRegister, if set, is told the listen address a newly registered
	// repository wants; it returns the address the node serves it on
	// (the node may be about to move there).
	OnRegister func(listen string) string
	// Pairing, if set, serves the pair service (to any peer) and admits
	// the handshakes of the peers it admits.
	Pairing Pairing
	// Routing is the node's routing at start (see SetRouting).
	Routing Routing
}

// Keepalive is the link keepalive of nodes: a handshake every 10 s, so a
// vanished peer is noticed within 25 s even when no stream is open.
const Keepalive = 10 * time.Second

// Node is a running telehash endpoint.
type Node struct {
	Mesh *telehash.Mesh
	opts Options
	log  *slog.Logger

	ctx     context.Context // ends when the node closes
	cancel  context.CancelFunc
	streams streams
	repos   repoSet
	local   localListener
	regs    registrations // the repositories registered by other daemons
	// admit admits peers beyond the repositories' (Options.Allow of a
	// node serving none).
	admit func(telehash.Hashname) bool
	// xmpp is the node's XMPP account, when it has one (xmppnode.go).
	xmpp xmppState
	// rt is its routing: routers used, and whether it routes.
	rt            routing
	routeRefusals atomic.Uint64

	closeOnce sync.Once
	closeErr  error
}

// Start binds the mesh and starts serving until ctx ends or Close.
func Start(ctx context.Context, opts Options) (*Node, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Permission == nil {
		allow := opts.Allow
		opts.Permission = func(h telehash.Hashname) Permission {
			if allow != nil && allow(h) {
				return Read
			}
			return None
		}
	}
	n := &Node{opts: opts, log: opts.Logger, admit: func(telehash.Hashname) bool { return false }}
	if opts.GitDir != "" {
		n.repos.add(&Repo{ID: opts.RepoID, GitDir: opts.GitDir, Hub: opts.Hub, Permission: opts.Permission})
	} else {
		perm := opts.Permission
		n.admit = func(h telehash.Hashname) bool { return perm(h) >= Read }
	}
	allow := func(h telehash.Hashname) bool { return n.admit(h) || n.repos.admits(h) || n.isRouter(h) }
	if pairing := opts.Pairing; pairing != nil {
		linkAllow := allow
		allow = func(h telehash.Hashname) bool { return linkAllow(h) || pairing.Admit(h) }
	}
	admitted := allow
	allow = func(h telehash.Hashname) bool {
		ok := admitted(h)
		if !ok {
			n.refusedHandshake(h)
		}
		return ok
	}
	m, err := telehash.NewMesh(ctx, opts.Identity, telehash.MeshOptions{Listen: opts.Listen, Allow: allow, Logger: opts.Logger,
		HandshakeTimeout: opts.LinkTimeout, Keepalive: Keepalive,
		// Always a router, which routes while SetRouting says so, for
		// the peers the repositories admit (remotedaemon.thRouter).
		Router: true, RouteFor: n.routeFor})
	if err != nil {
		return nil, err
	}
	n.Mesh = m
	n.ctx, n.cancel = context.WithCancel(ctx)
	context.AfterFunc(n.ctx, func() { _ = n.Close() })
	m.Handle(telehash.StreamType, func(c *telehash.Channel) { go n.serve(n.ctx, c) })
	n.SetRouting("", opts.Routing)
	return n, nil
}

// Close stops the node: the streams it serves end, its lending socket
// is removed and its UDP port is free once Close returns.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		for c, st := range n.streams.served("") { // tell the peers now, not by their timeouts
			c.Abort(reasonStopped)
			st.cancel()
		}
		n.cancel()
		n.local.close()
		n.closeErr = n.Mesh.Close()
	})
	return n.closeErr
}

// AddRepo serves r on the node until remove is called; remove ends
// the streams served for r.
func (n *Node) AddRepo(r *Repo) (remove func()) {
	n.repos.add(r)
	return func() {
		n.repos.remove(r)
		for c, st := range n.streams.served("") {
			if st.repo == r {
				c.Abort(reasonNoRepo)
				st.cancel()
			}
		}
	}
}

// Permission is the most peer may do in any repository the node serves.
func (n *Node) Permission(peer telehash.Hashname) Permission { return n.repos.permission(peer) }

// Done is closed once the node is closing: a watcher on it must move to
// the node that replaces it.
func (n *Node) Done() <-chan struct{} { return n.ctx.Done() }

// Addr is the node's address, with its bound path.
func (n *Node) Addr() Addr {
	return Addr{Hashname: n.opts.Identity.Hashname(), Keys: n.opts.Identity.Keys(), Paths: []netip.AddrPort{n.Mesh.Addr()}}
}

func (n *Node) serve(ctx context.Context, c *telehash.Channel) {
	peer := c.Peer()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer n.streams.remove(c)
	n.streams.add(c, cancel) // before the check: a Revoke after it finds the stream
	var req request
	if open := c.OpenPacket(); open != nil {
		if pkt, err := telehash.DecodePacket(open.Body); err == nil && pkt.IsJSON() {
			_ = json.Unmarshal(pkt.Head, &req)
		}
	}
	if req.Service == ServicePair && n.opts.Pairing != nil {
		n.streams.needNothing(c) // a config change (Revoke) leaves it alone
		n.servePair(ctx, c)
		return
	}
	repo, err := n.repos.resolve(peer, req.Repo)
	switch {
	case errors.Is(err, errNotAllowed):
		n.log.Warn("refused a stream from an unauthorized peer", "peer", peer)
		c.Abort(reasonRevoked)
		return
	case err != nil:
		n.log.Info("refused a stream", "peer", peer, "repo", req.Repo, "err", err)
		c.Abort(err.Error())
		return
	}
	n.streams.setRepo(c, repo)
	if repo.Permission(peer) < Read { // revoked since resolve: Revoke may have missed the stream's repo
		c.Abort(reasonRevoked)
		return
	}
	s, err := telehash.NewStream(ctx, c)
	if err != nil {
		c.Abort(err.Error())
		return
	}
	defer s.Close()
	switch req.Service {
	case ServiceGit:
		err = n.serveGit(ctx, c, s, repo)
	case ServiceNotify:
		gitDir := repo.GitDir
		err = notify.Serve(ctx, s, s, notify.ServerOptions{Hub: repo.Hub, Logger: n.log,
			Resolve: func(string) (string, error) { return gitDir, nil }})
	default:
		c.Abort(fmt.Sprintf("unknown service %q", req.Service))
		return
	}
	if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, helper.ErrNotAuthorized) { // helper.Serve logged a refusal
		n.log.Info("stream ended", "peer", peer, "service", req.Service, "err", err)
	}
}

// servePair serves a pair stream, to any peer: pairing decides.
func (n *Node) servePair(ctx context.Context, c *telehash.Channel) {
	s, err := telehash.NewStream(ctx, c)
	if err != nil {
		c.Abort(err.Error())
		return
	}
	defer s.Close()
	if err := n.opts.Pairing.ServePair(ctx, n, c.Peer(), s); err != nil && ctx.Err() == nil {
		n.log.Info("pairing stream ended", "peer", c.Peer(), "err", err)
	}
}

// Dial links to addr and opens a stream to its service.
func (n *Node) Dial(ctx context.Context, addr Addr, service string) (*telehash.Stream, error) {
	hn := addr.Hashname
	if err := n.xmppReady(addr); err != nil && !n.Mesh.Up(hn) {
		return nil, err
	}
	if !n.Mesh.Up(hn) {
		if err := n.awaitRouters(ctx, addr); err != nil {
			return nil, err
		}
		if !n.canReach(addr) {
			return nil, fmt.Errorf("%s: not linked, and the th:: URL has no key and path or router to reach it", hn)
		}
		n.log.Debug("linking", "peer", hn, "paths", addr.Paths)
		done := n.repos.startDial(hn) // its answers are let in
		lctx, stop := n.xmppLinkContext(ctx, addr)
		got, err := n.Mesh.Link(lctx, addr.LinkInfo())
		err = stop(err)
		done()
		n.log.Debug("link done", "peer", hn, "err", err)
		if err != nil {
			return nil, fmt.Errorf("link to %s: %w", hn, err)
		}
		if got != hn {
			return nil, fmt.Errorf("link to %s reached %s", hn, got)
		}
	}
	n.log.Debug("opening stream", "peer", hn, "service", service)
	s, err := n.Mesh.OpenStream(ctx, hn, request{Service: service, Repo: addr.Repo})
	if err == nil && addr.XMPP != "" {
		n.xmpp.track(hn, s.Channel()) // ended when its presence goes
	}
	return s, err
}

// waitLinked waits until the node hn links to us (for an address with
// only a hashname); false when ctx ends or the node closes first.
func (n *Node) waitLinked(ctx context.Context, hn telehash.Hashname) bool {
	for !n.Mesh.Up(hn) {
		select {
		case <-ctx.Done():
			return false
		case <-n.ctx.Done():
			return false
		case <-time.After(500 * time.Millisecond):
		}
	}
	return true
}

var _ io.ReadWriteCloser = (*telehash.Stream)(nil)
