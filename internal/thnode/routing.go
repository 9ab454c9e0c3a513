package thnode

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/internal/gitcfg"
	"github.com/git-remote-daemon/git-remote-daemon/telehash"
)

// Routing is a repository's routing configuration (docs/ROUTING.md):
//
//	remotedaemon.thRouter true        the node routes for the peers the repository's th:: remotes name
//	remotedaemon.thRouters <th:: URL> a router the node keeps a link to (multi-valued)
//	remotedaemon.thRelayRate 10m      bytes a second the router relays per pair of peers (0: no bound)
//
// A node serving several repositories (one node per identity) routes
// when one of them says so, and uses the routers of all of them.
type Routing struct {
	// Route makes the node a router: it introduces to each other, and
	// relays between, peers that one of its repositories' th:: remotes
	// names (and nobody else).
	Route bool
	// Routers are the routers the node links to and keeps its links to
	// (a node behind a NAT is reached through them).
	Routers []Addr
	// RelayRate bounds the bytes a second a router relays for one pair
	// of peers: 0 unset (telehash.DefaultRelayRate), negative no bound.
	RelayRate int64
}

// ParseRouting reads remotedaemon.thRouter and remotedaemon.thRouters.
// A bad router URL is left out and reported in the error, with the
// others kept.
func ParseRouting(cfg *gitcfg.Config) (Routing, error) {
	var rt Routing
	var errs []error
	route, err := cfg.Bool("remotedaemon.throuter", false)
	if err != nil {
		errs = append(errs, fmt.Errorf("remotedaemon.thRouter: %w", err))
	}
	rt.Route = route
	rate, err := cfg.Int("remotedaemon.threlayrate", 0)
	switch {
	case err != nil:
		errs = append(errs, fmt.Errorf("remotedaemon.thRelayRate: %w", err))
	case rate < 0:
		errs = append(errs, fmt.Errorf("remotedaemon.thRelayRate: %d: bytes a second, 0 for no bound", rate))
	case rate == 0:
		if _, set := cfg.Get("remotedaemon.threlayrate"); set {
			rt.RelayRate = -1
		}
	default:
		rt.RelayRate = rate
	}
	for _, u := range cfg.GetAll("remotedaemon.throuters") {
		a, err := ParseAddr(cfg.RewriteURL(u, false))
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("remotedaemon.thRouters: %w", err))
		case a.Keys[telehash.CS3a.String()] == "" || len(a.Paths) == 0:
			errs = append(errs, fmt.Errorf("remotedaemon.thRouters: %s: a router's URL needs its cs3a key and a udp4 or udp6 path (run `git-remote-daemon address` on the router)", clip(u)))
		default:
			a.Repo, a.Routers = "", nil
			rt.Routers = append(rt.Routers, a)
		}
	}
	return rt, errors.Join(errs...)
}

// routing is a node's routing state: what each source (a repository, or
// the git helper) asks for, and the links to the routers in use.
type routing struct {
	route atomic.Bool
	mu    sync.Mutex
	by    map[string]Routing
	runs  map[telehash.Hashname]*routerRun
	// said is when a refusal of each peer was last logged.
	said map[telehash.Hashname]time.Time
}

// routerRun keeps the link to one router.
type routerRun struct {
	addr   Addr
	cancel context.CancelFunc
	first  chan struct{} // closed after the first attempt
	once   sync.Once
	up     atomic.Bool
	err    atomic.Pointer[error]
}

// SetRouting applies the routing configuration of source (a repository's
// git directory): the node routes while one source says so, and keeps
// links to the routers of every source. A zero Routing removes source.
func (n *Node) SetRouting(source string, rt Routing) {
	r := &n.rt
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.by == nil {
		r.by = map[string]Routing{}
		r.runs = map[telehash.Hashname]*routerRun{}
	}
	if rt.Route || len(rt.Routers) > 0 {
		r.by[source] = rt
	} else {
		delete(r.by, source)
	}
	route := false
	var rate int64 // of the sources that route: no bound wins, then the highest
	want := map[telehash.Hashname]Addr{}
	for _, s := range r.by {
		route = route || s.Route
		if s.Route && rate >= 0 && (s.RelayRate < 0 || s.RelayRate > rate) {
			rate = s.RelayRate
		}
		for _, a := range s.Routers {
			if a.Hashname != n.opts.Identity.Hashname() {
				want[a.Hashname] = a
			}
		}
	}
	if rate == 0 {
		rate = telehash.DefaultRelayRate
	}
	if rate > math.MaxInt {
		rate = -1
	}
	if old := int64(n.Mesh.RelayRate()); old != rate {
		n.Mesh.SetRelayRate(int(rate))
		n.log.Info("relay rate per pair of peers (remotedaemon.thRelayRate)", "bytes/s", rate, "was", old)
	}
	if r.route.Swap(route) != route {
		if route {
			n.log.Info("routing for the peers named in the th:: remotes (remotedaemon.thRouter)")
		} else {
			n.log.Info("no longer routing (remotedaemon.thRouter)")
		}
	}
	for h, run := range r.runs {
		if a, ok := want[h]; !ok || a.String() != run.addr.String() {
			run.cancel()
			delete(r.runs, h)
			if !ok {
				n.log.Info("no longer using a router", "router", h)
			}
		}
	}
	for h, a := range want {
		if r.runs[h] != nil {
			continue
		}
		ctx, cancel := context.WithCancel(n.ctx)
		run := &routerRun{addr: a, cancel: cancel, first: make(chan struct{})}
		r.runs[h] = run
		go n.keepRouter(ctx, run)
	}
}

// Routers returns the hashnames of the routers the node is configured
// to use, sorted.
func (n *Node) Routers() []telehash.Hashname {
	n.rt.mu.Lock()
	defer n.rt.mu.Unlock()
	out := make([]telehash.Hashname, 0, len(n.rt.runs))
	for h := range n.rt.runs {
		out = append(out, h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// isRouter says whether h is one of the node's routers (its handshakes
// are answered: we link to it, it grants no repository).
func (n *Node) isRouter(h telehash.Hashname) bool {
	n.rt.mu.Lock()
	defer n.rt.mu.Unlock()
	return n.rt.runs[h] != nil
}

// routeFor is the mesh's RouteFor: while routing is on, the peers that
// one of the node's repositories admits.
func (n *Node) routeFor(h telehash.Hashname) bool {
	if !n.rt.route.Load() {
		return false
	}
	if n.admit(h) || n.repos.permission(h) >= Read {
		return true
	}
	n.routeRefusals.Add(1)
	n.log.Info("refused to route for a peer no th:: remote names", "peer", h)
	return false
}

// refusedHandshake logs, on a router, a handshake that no repository
// admits (at most once a minute per peer, as the peer retries): the
// router's owner sees who tries to use the router without being named.
// The mesh counts them all (Stats.DropUnauthorized).
func (n *Node) refusedHandshake(h telehash.Hashname) {
	if !n.rt.route.Load() {
		return
	}
	r := &n.rt
	r.mu.Lock()
	now := time.Now()
	if r.said == nil || len(r.said) > 1024 {
		r.said = map[telehash.Hashname]time.Time{}
	}
	last, seen := r.said[h]
	if seen && now.Sub(last) < time.Minute {
		r.mu.Unlock()
		return
	}
	r.said[h] = now
	r.mu.Unlock()
	n.log.Info("refused a node that no th:: remote names: it gets no answer, and no routing", "peer", h)
}

// Router backoff between link attempts to a router that does not answer.
const (
	routerRetryMin = time.Second
	routerRetryMax = time.Minute
	routerCheck    = 2 * time.Second
)

// keepRouter links to the router and keeps the link (Mesh.AddRouter)
// until ctx ends, trying again with backoff while it fails.
func (n *Node) keepRouter(ctx context.Context, run *routerRun) {
	h := run.addr.Hashname
	wait := routerRetryMin
	var said string
	for ctx.Err() == nil {
		_, err := n.Mesh.AddRouter(ctx, run.addr.LinkInfo())
		if err == nil {
			run.up.Store(true)
			run.once.Do(func() { close(run.first) })
			if said != "ok" {
				n.log.Info("using a router", "router", h, "paths", run.addr.Paths)
			}
			said, wait = "ok", routerRetryMin
			// The mesh keeps the link up (it re-links a kept peer). The
			// router is added again should it leave the mesh's list (the
			// run it replaced, for a new address, may remove it as it ends).
			for ctx.Err() == nil && slices.Contains(n.Mesh.Routers(), h) {
				sleep(ctx, routerCheck)
			}
			run.up.Store(false)
			continue
		}
		if ctx.Err() != nil {
			break
		}
		run.err.Store(&err)
		run.once.Do(func() { close(run.first) })
		if err.Error() != said {
			said = err.Error()
			n.log.Warn("cannot link to a router (does its configuration name this node in a th:: remote?); trying again", "router", h, "err", err)
		}
		sleep(ctx, wait)
		wait = min(2*wait, routerRetryMax)
	}
	run.once.Do(func() { close(run.first) })
}

// awaitRouters waits for the routers a dial to addr needs: those its URL
// names (each must be one of the node's routers), or, for an address
// with a key and no path, all of the node's routers' first attempts.
func (n *Node) awaitRouters(ctx context.Context, addr Addr) error {
	n.rt.mu.Lock()
	var runs []*routerRun
	var unknown []telehash.Hashname
	for _, h := range addr.Routers {
		if run := n.rt.runs[h]; run != nil {
			runs = append(runs, run)
		} else if !slices.Contains(n.Mesh.Routers(), h) {
			unknown = append(unknown, h)
		}
	}
	if len(addr.Routers) == 0 && len(addr.Paths) == 0 && addr.XMPP == "" { // an xmpp:: node: its pipe is its path
		for _, run := range n.rt.runs {
			runs = append(runs, run)
		}
	}
	n.rt.mu.Unlock()
	if len(unknown) > 0 && len(runs) == 0 && len(addr.Paths) == 0 {
		return fmt.Errorf("the th:: URL of %s names router %s, which is not one of this node's routers: add the router's th:: URL to remotedaemon.thRouters", addr.Hashname, unknown[0])
	}
	var errs []error
	up := false
	for _, run := range runs {
		select {
		case <-run.first:
		case <-ctx.Done():
			return ctx.Err()
		}
		if run.up.Load() {
			up = true
		} else if p := run.err.Load(); p != nil {
			errs = append(errs, fmt.Errorf("router %s: %w", run.addr.Hashname, *p))
		}
	}
	if !up && len(errs) > 0 && len(addr.Paths) == 0 {
		return fmt.Errorf("no router to reach %s through: %w", addr.Hashname, errors.Join(errs...))
	}
	return nil
}

// canReach says whether the node can link to addr by itself: a key and
// a path or router, or a key and routers of its own (through which it
// tries every peer).
func (n *Node) canReach(addr Addr) bool {
	return addr.Reachable() || (addr.Keys[telehash.CS3a.String()] != "" && len(n.Routers()) > 0)
}

// RoutingStatus is what the node's routing did so far.
type RoutingStatus struct {
	Router bool // routing (remotedaemon.thRouter)
	// RelayRate is the bound on the bytes a second relayed per pair of
	// peers (remotedaemon.thRelayRate); negative: none.
	RelayRate int
	Routers   []telehash.Hashname // routers linked now
	telehash.RoutingStats
	// Refused counts handshakes of peers no remote names and routing
	// refused for such peers.
	Refused uint64
}

// RoutingStatus reports the node's routing.
func (n *Node) RoutingStatus() RoutingStatus {
	st := n.Mesh.Stats()
	return RoutingStatus{Router: n.rt.route.Load(), RelayRate: n.Mesh.RelayRate(), Routers: n.Mesh.Routers(), RoutingStats: st.RoutingStats,
		Refused: st.DropUnauthorized + n.routeRefusals.Load()}
}

// PrivateOnly reports whether every path is a loopback, private or
// link-local address: peers outside this network (behind other NATs)
// need a router to reach a node listening there.
func PrivateOnly(paths []netip.AddrPort) bool {
	for _, p := range paths {
		a := p.Addr().Unmap()
		if !a.IsLoopback() && !a.IsPrivate() && !a.IsLinkLocalUnicast() && !isCGNAT(a) {
			return false
		}
	}
	return true
}

// isCGNAT: 100.64.0.0/10, the shared address space of carrier NATs.
func isCGNAT(a netip.Addr) bool { return netip.MustParsePrefix("100.64.0.0/10").Contains(a) }
