package thnode

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// host binds the node, serves until ctx ends, and closes it. A node
// whose port no configuration fixed moves to the address a registering
// repository wants (its remotedaemon.thListen, or all interfaces for a
// node on loopback): the host closes it and binds anew, still holding
// the lock, and the others register again.
func (s *Service) host(ctx context.Context, r *running, lock *hostLock, report func(error)) error {
	if lock != nil {
		defer lock.release()
	}
	var last string
	if lock != nil {
		last = lock.lastAddr()
	}
	listens := hostListen(r.key.listen, last)
	fixed := portFixed(r.key.listen)
	var before []string // where the node was before a move
	for {
		var mv mover
		node, err := s.startNode(ctx, r, listens, &mv, fixed)
		if err != nil && before != nil {
			s.log.Warn("cannot move the telehash node; it stays where it was", "udp", listens[0], "err", err)
			listens, before, fixed = before, nil, true // and moves no more
			continue
		}
		if err != nil {
			return fmt.Errorf("remotedaemon.thListen %s: %w", listens[0], err)
		}
		node.SetRouting(s.opts.GitDir, s.currentRouting())
		stop := context.AfterFunc(ctx, func() { _ = node.Close() })
		if err := node.ServeLocal(); err != nil {
			s.log.Warn("cannot lend the node to git-remote-th and other daemons", "err", err)
		}
		if lock != nil {
			lock.record(node.Mesh.Addr().String())
		}
		s.log.Info("serving on telehash", "hashname", r.id.Hashname(), "udp", node.Mesh.Addr())
		if paths, err := ListenPaths(node.Mesh.Addr().String()); err == nil && PrivateOnly(paths) && len(node.Routers()) == 0 {
			s.log.Info("the telehash node listens on loopback or private addresses only: peers behind other NATs reach it only through a router (remotedaemon.thRouters)")
		}
		s.setLink(node.Link(), node)
		report(nil)
		s.refresh(node)
		s.setLink(nil, nil)
		stop()
		if err := node.Close(); err != nil {
			s.log.Debug("closing the telehash node", "err", err)
		}
		next := mv.target()
		if ctx.Err() != nil || next == "" {
			return nil
		}
		s.log.Info("moving the telehash node to the address another repository of this identity wants", "udp", next)
		before = []string{node.Mesh.Addr().String()}
		listens, fixed = []string{next}, fixed || portFixed(next)
	}
}

func (s *Service) startNode(ctx context.Context, r *running, listens []string, mv *mover, fixed bool) (*Node, error) {
	var node *Node
	var err error
	for _, listen := range listens {
		// The node ends by Close (when ctx ends), which tells the peers
		// "node stopped" before its streams' contexts end.
		node, err = Start(context.WithoutCancel(ctx), Options{Identity: r.id, Listen: listen, GitDir: s.opts.GitDir, RepoID: r.key.repoID, Hub: s.opts.Hub,
			LinkTimeout: r.key.linkTimeout, Logger: s.log, Permission: s.allow.Permission,
			ReadConfig: s.opts.ReadConfig, RefreshEvery: s.opts.RefreshEvery, Pairing: s.opts.Pairing,
			OnRegister: func(want string) string { return mv.consider(node, fixed, want) }})
		if err == nil {
			s.attachXMPP(ctx, node, r)
			return node, nil
		}
	}
	return nil, err
}

// mover decides whether the node moves for a registering repository.
type mover struct {
	mu   sync.Mutex
	next string
}

func (m *mover) target() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.next
}

// consider moves node (closing it; host binds the next) when want asks
// for a port and node's is not fixed, or for all interfaces while node
// is on loopback; it returns the address the repository is served on.
func (m *mover) consider(node *Node, fixed bool, want string) string {
	bound := node.Mesh.Addr()
	next := moveTarget(bound, fixed, want)
	if next == "" {
		return bound.String()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.next == "" {
		m.next = next
		go node.Close()
	}
	return m.next
}

// moveTarget is where a node bound at bound moves for a repository that
// wants it at want ("" stays).
func moveTarget(bound netip.AddrPort, fixed bool, want string) string {
	whost, wport, err := net.SplitHostPort(want)
	if fixed || err != nil {
		return ""
	}
	if wport != "0" {
		if ap, err := netip.ParseAddrPort(want); err == nil && ap == bound {
			return ""
		}
		return want
	}
	if sameHost(whost, "0.0.0.0") && bound.Addr().IsLoopback() {
		return net.JoinHostPort("0.0.0.0", strconv.Itoa(int(bound.Port())))
	}
	return ""
}

// portFixed says whether a listen address names its port.
func portFixed(listen string) bool {
	_, port, err := net.SplitHostPort(listen)
	return err == nil && port != "0"
}

// warnListen says when the host's node is not where this repository's
// configuration wants it.
func (s *Service) warnListen(listen, bound string) {
	host, port, err := net.SplitHostPort(listen)
	bhost, bport, berr := net.SplitHostPort(bound)
	if err != nil || berr != nil {
		return
	}
	if (port != "0" && port != bport) || (sameHost(host, "0.0.0.0") && !sameHost(bhost, "0.0.0.0")) {
		s.log.Warn("the telehash node of this identity runs on another address than this repository's remotedaemon.thListen "+
			"(another repository's daemon, or git-remote-th, started it first); this repository is served there. "+
			"Give every repository of one identity the same remotedaemon.thListen", "want", listen, "node", bound)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
