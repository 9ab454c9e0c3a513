package telehash

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// TestRouterPunchNewNode: A's identity links to B through the router
// from one node (A1, a git helper's), which stops while B still punches
// its address; another node of the same identity (A2, the daemon's, on
// another port) links to B through the router at once. B must punch A2's
// address too: B's side is behind a home router (what comes from A2
// directly is dropped until B sent to A2), so without B's punch there is
// no direct path, and the link dies with the router.
func TestRouterPunchNewNode(t *testing.T) {
	opts := fastOpts()
	opts.ChannelTimeout = 10 * time.Second
	ropts := opts
	ropts.Router, ropts.Allow = true, allowAll
	ropts.RelayRate = 64 << 20
	r := newTestMesh(t, "punchnew-r", ropts)
	a1 := newTestMesh(t, "punchnew-a", opts)
	bopts := opts
	bopts.Allow = func(h Hashname) bool { return h == a1.Hashname() }
	b := newTestMesh(t, "punchnew-b", bopts)
	// B's home router, once A2 runs: A2's packets to B's address pass
	// only once B sent one to A2's (set before B sends anything).
	var a2Addr atomic.Pointer[pathAddr]
	var bSent atomic.Bool
	b.testDrop = func(to pathAddr) bool {
		if a := a2Addr.Load(); a != nil && to == *a {
			bSent.Store(true)
		}
		return false
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	for _, m := range []*Mesh{a1, b} {
		if _, err := m.AddRouter(ctx, r.LinkInfo()); err != nil {
			t.Fatal(err)
		}
	}
	link := func(a *Mesh) {
		t.Helper()
		lctx, lcancel := context.WithTimeout(ctx, 10*time.Second)
		defer lcancel()
		if _, err := a.Link(lctx, LinkInfo{Keys: b.LinkInfo().Keys}); err != nil {
			t.Fatal(err)
		}
	}
	link(a1)
	waitFor(t, "b sees a1 up", func() bool { return b.Up(a1.Hashname()) })
	a1.Close()

	a2 := newTestMesh(t, "punchnew-a", opts) // same identity, another port
	a2Path := udpPath(a2.Addr())
	a2Addr.Store(&a2Path)
	a2.testDrop = func(to pathAddr) bool { return to == udpPath(b.Addr()) && !bSent.Load() }
	if _, err := a2.AddRouter(ctx, r.LinkInfo()); err != nil {
		t.Fatal(err)
	}
	link(a2)
	// Within the punch window (later keepalives over the relay may bring
	// other introductions, and punches: too late for a stream open now).
	deadline := time.Now().Add(3 * time.Second)
	for {
		pa, pb := a2.lookup(b.Hashname()), b.lookup(a2.Hashname())
		if pa != nil && pb != nil && pa.path() == udpPath(b.Addr()) && pb.path() == udpPath(a2.Addr()) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no direct path between a2 and b within 3s: a2 %v, b %v; b %+v", pa.path(), pb.path(), b.Stats().RoutingStats)
		}
		time.Sleep(5 * time.Millisecond)
	}
	r.Close()
	runStreamPair(t, a2, b, 256<<10)
}
