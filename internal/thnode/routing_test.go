package thnode

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/telehash"
)

// TestParseRouting: thRouter is a git boolean; each thRouters value is
// a th:: URL with a key and a path (what `address` prints on the
// router); bad ones are reported, and the good ones kept.
func TestParseRouting(t *testing.T) {
	r1, r2 := identity(t), identity(t)
	u1 := thURL(r1) + "&udp4=127.0.0.1:9&repo=abc"
	u2 := thURL(r2) + "&udp6=[::1]:7"
	rt, err := ParseRouting(config(t, "remotedaemon.throuter", "yes", "remotedaemon.throuters", u1, "remotedaemon.throuters", u2))
	if err != nil || !rt.Route || len(rt.Routers) != 2 {
		t.Fatalf("ParseRouting = %+v, %v", rt, err)
	}
	if a := rt.Routers[0]; a.Hashname != r1.Hashname() || a.Repo != "" || a.Paths[0] != netip.MustParseAddrPort("127.0.0.1:9") {
		t.Errorf("router 1 = %+v", a)
	}
	rt, err = ParseRouting(config(t))
	if err != nil || rt.Route || len(rt.Routers) != 0 {
		t.Errorf("empty configuration: %+v, %v", rt, err)
	}
	rt, err = ParseRouting(config(t, "remotedaemon.throuter", "maybe",
		"remotedaemon.throuters", thURL(r1), // no path
		"remotedaemon.throuters", "th::nope",
		"remotedaemon.throuters", u2))
	if err == nil || rt.Route || len(rt.Routers) != 1 || rt.Routers[0].Hashname != r2.Hashname() {
		t.Fatalf("bad values: %+v, %v", rt, err)
	}
	for _, want := range []string{"remotedaemon.thRouter", "needs its cs3a key and a udp4 or udp6 path", "malformed th:: address"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	// thRelayRate: a git integer (k, m, g); 0 is no bound; unset, the default.
	for v, want := range map[string]int64{"10m": 10 << 20, "500k": 500 << 10, "0": -1} {
		rt, err := ParseRouting(config(t, "remotedaemon.threlayrate", v))
		if err != nil || rt.RelayRate != want {
			t.Errorf("thRelayRate %q: %+v, %v; want %d", v, rt, err, want)
		}
	}
	if rt.RelayRate != 0 {
		t.Errorf("thRelayRate unset: %d", rt.RelayRate)
	}
	for _, v := range []string{"fast", "-1", "1.5m"} {
		rt, err := ParseRouting(config(t, "remotedaemon.threlayrate", v, "remotedaemon.throuter", "true"))
		if err == nil || !strings.Contains(err.Error(), "remotedaemon.thRelayRate") || rt.RelayRate != 0 || !rt.Route {
			t.Errorf("thRelayRate %q: %+v, %v; want an error, the default and the rest kept", v, rt, err)
		}
	}
	// The routers' paths decide where the node binds.
	if listen, _ := listenAddr(config(t, "remote.b.url", thURL(r1), "remotedaemon.throuters", thURL(r2)+"&udp4=192.0.2.1:9")); listen != "0.0.0.0:0" {
		t.Errorf("a node using a router elsewhere binds %s", listen)
	}
}

// TestPrivateOnly: loopback, RFC 1918, CGNAT and link-local addresses
// are not reachable from behind other NATs.
func TestPrivateOnly(t *testing.T) {
	ps := func(s ...string) (out []netip.AddrPort) {
		for _, x := range s {
			out = append(out, netip.MustParseAddrPort(x))
		}
		return out
	}
	if !PrivateOnly(ps("127.0.0.1:1", "10.1.2.3:1", "192.168.1.1:1", "100.64.0.1:1", "[fd00::1]:1", "[::1]:1")) {
		t.Error("private addresses taken for public")
	}
	if PrivateOnly(ps("10.1.2.3:1", "192.0.2.1:1")) || PrivateOnly(ps("[2001:db8::1]:1")) {
		t.Error("a public address taken for private")
	}
}

func startNode(t *testing.T, ctx context.Context, allow ...telehash.Hashname) *Node {
	t.Helper()
	n, err := Start(ctx, Options{Identity: identity(t), Listen: "127.0.0.1:0", LinkTimeout: 3 * time.Second,
		Allow: func(h telehash.Hashname) bool { return slices.Contains(allow, h) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
	}
}

// TestRouterLifecycle: nodes keep links to the routers SetRouting
// names and drop them when no source names them; a router routes only
// while a source says so (read live) and only for the peers it admits;
// a URL naming a router the node does not use is refused clearly.
func TestRouterLifecycle(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	aID, bID, dID := identity(t), identity(t), identity(t)
	r := startNode(t, ctx, aID.Hashname(), bID.Hashname(), dID.Hashname())
	r.SetRouting("repo", Routing{Route: true})
	rAddr := r.Addr()

	// B is "behind a NAT": it links to R and waits.
	b, err := Start(ctx, Options{Identity: bID, Listen: "127.0.0.1:0", LinkTimeout: 3 * time.Second,
		Allow: func(h telehash.Hashname) bool { return h == aID.Hashname() || h == dID.Hashname() }})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.SetRouting("b", Routing{Routers: []Addr{rAddr}})
	waitFor(t, "B links to its router", func() bool { return slices.Contains(b.Mesh.Routers(), rAddr.Hashname) })

	// A reaches B by key and router hint only.
	a, err := Start(ctx, Options{Identity: aID, Listen: "127.0.0.1:0", LinkTimeout: 3 * time.Second,
		Allow: func(h telehash.Hashname) bool { return h == bID.Hashname() }, Routing: Routing{Routers: []Addr{rAddr}}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	bAddr := Addr{Hashname: bID.Hashname(), Keys: bID.Keys(), Routers: []telehash.Hashname{rAddr.Hashname}}
	if err := a.awaitRouters(ctx, bAddr); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Mesh.Link(ctx, bAddr.LinkInfo()); err != nil {
		t.Fatalf("link through the router: %v; router %+v", err, r.RoutingStatus())
	}
	if st := r.RoutingStatus(); st.PeerRequests == 0 || !st.Router {
		t.Errorf("router status %+v", st)
	}
	if st := b.RoutingStatus(); st.Connects == 0 || st.Router || !slices.Equal(st.Routers, []telehash.Hashname{rAddr.Hashname}) {
		t.Errorf("B's routing status %+v", st)
	}

	// A router that A does not use: a clear error.
	other := Addr{Hashname: bID.Hashname(), Keys: bID.Keys(), Routers: []telehash.Hashname{dID.Hashname()}}
	a.Mesh.Unlink(bID.Hashname())
	waitFor(t, "A unlinked from B", func() bool { return !a.Mesh.Up(bID.Hashname()) })
	if _, err := a.Dial(ctx, other, ServiceGit); err == nil || !strings.Contains(err.Error(), "not one of this node's routers") {
		t.Errorf("dial through an unknown router: %v", err)
	}

	// Routing off (a RELOAD): D, whom R admits, is refused.
	r.SetRouting("repo", Routing{})
	d, err := Start(ctx, Options{Identity: dID, Listen: "127.0.0.1:0", LinkTimeout: 2 * time.Second,
		Allow: func(h telehash.Hashname) bool { return h == bID.Hashname() }, Routing: Routing{Routers: []Addr{rAddr}}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	viaR := Addr{Hashname: bID.Hashname(), Keys: bID.Keys(), Routers: []telehash.Hashname{rAddr.Hashname}}
	if err := d.awaitRouters(ctx, viaR); err != nil {
		t.Fatal(err)
	}
	refused := r.RoutingStatus().PeerRefused
	if _, err := d.Mesh.Link(ctx, viaR.LinkInfo()); err == nil {
		t.Fatal("a router that no longer routes introduced D to B")
	}
	if got := r.RoutingStatus().PeerRefused; got <= refused {
		t.Errorf("peer requests refused: %d, was %d", got, refused)
	}
	// Routing on again: D gets through.
	r.SetRouting("other repo", Routing{Route: true})
	if _, err := d.Mesh.Link(ctx, viaR.LinkInfo()); err != nil {
		t.Fatalf("link once routing is back: %v", err)
	}

	// B's router at a new address (one more path): replaced, and kept.
	moved := rAddr
	moved.Paths = append([]netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:9")}, rAddr.Paths...)
	b.SetRouting("b", Routing{Routers: []Addr{moved}})
	time.Sleep(3 * routerCheck)
	if !slices.Contains(b.Mesh.Routers(), rAddr.Hashname) {
		t.Error("the router was lost when its address changed")
	}

	// B's router removed: the link is no longer kept as a router.
	b.SetRouting("b", Routing{})
	waitFor(t, "B drops its router", func() bool { return len(b.Mesh.Routers()) == 0 && len(b.Routers()) == 0 })
}

// TestServiceRouting: the node of an identity uses the routers of every
// repository it serves (its host's and the registered ones), routes
// while one of them sets remotedaemon.thRouter, and follows their
// configuration (Configure after a RELOAD, a registered repository's
// CONFIG) without restarting.
func TestServiceRouting(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*hangGuard)
	defer cancel()
	a, b := twoRepos(t)
	router, err := Start(ctx, Options{Identity: identity(t), Listen: "127.0.0.1:0", Allow: func(telehash.Hashname) bool { return true }})
	if err != nil {
		t.Fatal(err)
	}
	defer router.Close()
	rURL := router.Addr().String()
	rHN := router.Addr().Hashname
	peer := thURL(identity(t))
	port := freeUDPPort(t)
	for _, dir := range []string{a, b} {
		git(t, dir, "config", "remotedaemon.thListen", "127.0.0.1:"+itoa(port))
		git(t, dir, "remote", "add", "peer", peer)
	}
	sa, sb := newService(t, a, nil), newService(t, b, nil)
	configureFromGit(t, ctx, sa, a)
	configureFromGit(t, ctx, sb, b)
	host := sa.Node()
	if host == nil || sb.Node() != nil {
		t.Fatal("want a hosting, b registered")
	}

	// The registered repository names the router: the host uses it.
	git(t, b, "config", "remotedaemon.thRouters", rURL)
	configureFromGit(t, ctx, sb, b)
	waitFor(t, "the host links to b's router", func() bool { return slices.Contains(host.Mesh.Routers(), rHN) })
	// b routes: the host routes.
	git(t, b, "config", "remotedaemon.thRouter", "true")
	configureFromGit(t, ctx, sb, b)
	waitFor(t, "the host routes for b", func() bool { return host.RoutingStatus().Router })
	// b's relay rate applies while b routes, read again like the rest.
	if got := host.RoutingStatus().RelayRate; got != telehash.DefaultRelayRate {
		t.Errorf("relay rate %d, want the default", got)
	}
	git(t, b, "config", "remotedaemon.thRelayRate", "10m")
	configureFromGit(t, ctx, sb, b)
	if got := host.Mesh.RelayRate(); got != 10<<20 {
		t.Errorf("relay rate %d after thRelayRate 10m, want %d", got, 10<<20)
	}
	git(t, a, "config", "remotedaemon.thRouter", "true")
	git(t, a, "config", "remotedaemon.thRelayRate", "0")
	configureFromGit(t, ctx, sa, a)
	if got := host.Mesh.RelayRate(); got >= 0 {
		t.Errorf("relay rate %d after a's thRelayRate 0, want no bound", got)
	}
	git(t, a, "config", "--unset", "remotedaemon.thRelayRate")
	git(t, a, "config", "remotedaemon.thRouter", "false")
	configureFromGit(t, ctx, sa, a)
	if got := host.Mesh.RelayRate(); got != 10<<20 {
		t.Errorf("relay rate %d after a's thRelayRate went, want b's %d", got, 10<<20)
	}
	// a names the router too, b no longer: still used; then nobody: dropped.
	git(t, a, "config", "remotedaemon.thRouters", rURL)
	configureFromGit(t, ctx, sa, a)
	git(t, b, "config", "--unset-all", "remotedaemon.thRouters")
	git(t, b, "config", "remotedaemon.thRouter", "false")
	configureFromGit(t, ctx, sb, b)
	waitFor(t, "b no longer routes", func() bool { return !host.RoutingStatus().Router })
	if got := host.Mesh.RelayRate(); got != telehash.DefaultRelayRate {
		t.Errorf("relay rate %d with no source routing, want the default", got)
	}
	if !slices.Equal(host.Routers(), []telehash.Hashname{rHN}) {
		t.Errorf("routers %v, want a's %s", host.Routers(), rHN)
	}
	git(t, a, "config", "--unset-all", "remotedaemon.thRouters")
	configureFromGit(t, ctx, sa, a)
	waitFor(t, "the router dropped", func() bool { return len(host.Mesh.Routers()) == 0 })
	if sa.Node() != host {
		t.Error("the node restarted for a routing change")
	}
}

// TestRouterRestart: a node keeps its router: when the router restarts
// (same identity and port), the node links to it again by itself, and a
// peer reaches the node through it.
func TestRouterRestart(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rID, aID, bID := identity(t), identity(t), identity(t)
	allow := func(h telehash.Hashname) bool { return h == aID.Hashname() || h == bID.Hashname() }
	r, err := Start(ctx, Options{Identity: rID, Listen: "127.0.0.1:0", Allow: allow})
	if err != nil {
		t.Fatal(err)
	}
	r.SetRouting("r", Routing{Route: true})
	rAddr := r.Addr()
	b, err := Start(ctx, Options{Identity: bID, Listen: "127.0.0.1:0", LinkTimeout: 3 * time.Second,
		Allow: func(h telehash.Hashname) bool { return h == aID.Hashname() }, Routing: Routing{Routers: []Addr{rAddr}}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	waitFor(t, "B links to its router", func() bool { return r.Mesh.Up(bID.Hashname()) })
	r.Close()
	time.Sleep(1100 * time.Millisecond) // a new session's "at" is in seconds
	r2, err := Start(ctx, Options{Identity: rID, Listen: rAddr.Paths[0].String(), Allow: allow})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	r2.SetRouting("r", Routing{Route: true})
	deadline := time.Now().Add(40 * time.Second)
	for !r2.Mesh.Up(bID.Hashname()) {
		if time.Now().After(deadline) {
			t.Fatal("B did not link to its restarted router")
		}
		time.Sleep(50 * time.Millisecond)
	}
	a, err := Start(ctx, Options{Identity: aID, Listen: "127.0.0.1:0", LinkTimeout: 3 * time.Second,
		Allow: func(h telehash.Hashname) bool { return h == bID.Hashname() }, Routing: Routing{Routers: []Addr{rAddr}}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	viaR := Addr{Hashname: bID.Hashname(), Keys: bID.Keys(), Routers: []telehash.Hashname{rID.Hashname()}}
	if err := a.awaitRouters(ctx, viaR); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Mesh.Link(ctx, viaR.LinkInfo()); err != nil {
		t.Fatalf("link through the restarted router: %v", err)
	}
}
