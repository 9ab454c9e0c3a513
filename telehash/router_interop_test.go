package telehash

import (
	"context"
	"encoding/json"
	"testing"
	"time"
)

// jsNode is a started js_router_peer.js with its link info.
type jsNode struct {
	*jsHarness
	hn   Hashname
	keys map[string]string
	info LinkInfo
}

func startJSRouterPeer(t *testing.T, ctx context.Context) *jsNode {
	js := startJSScript(t, ctx, "testdata/js_router_peer.js")
	ready := js.wait("ready")
	n := &jsNode{jsHarness: js, hn: Hashname(ready["hashname"].(string)), keys: map[string]string{}}
	for k, v := range ready["keys"].(map[string]any) {
		n.keys[k] = v.(string)
	}
	raw, _ := json.Marshal(map[string]any{"keys": n.keys, "paths": ready["paths"]})
	if err := json.Unmarshal(raw, &n.info); err != nil {
		t.Fatal(err)
	}
	return n
}

// jsOpts are mesh options that suit telehash-js's schedules.
func jsOpts() MeshOptions {
	opts := fastOpts()
	opts.Keepalive = 30 * time.Second
	opts.LinkTimeout = time.Minute
	opts.ChannelTimeout = 10 * time.Second
	return opts
}

// TestJSRouterBetweenMeshes: telehash-js (its peer extension) routes
// between two meshes that cannot reach each other directly: the
// introduction goes through its peer/connect channels and the stream
// through its relay by token.
func TestJSRouterBetweenMeshes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	js := startJSRouterPeer(t, ctx)
	a := newTestMesh(t, "jsr-a", jsOpts())
	bopts := jsOpts()
	bopts.Allow = func(h Hashname) bool { return h == a.Hashname() }
	b := newTestMesh(t, "jsr-b", bopts)
	a.testDrop = func(to pathAddr) bool { return to == udpPath(b.Addr()) }
	b.testDrop = func(to pathAddr) bool { return to == udpPath(a.Addr()) }
	for _, m := range []*Mesh{a, b} {
		if _, err := m.AddRouter(ctx, js.info); err != nil {
			t.Fatalf("link to the telehash-js router: %v", err)
		}
	}
	lctx, lcancel := context.WithTimeout(ctx, 15*time.Second)
	defer lcancel()
	if _, err := a.Link(lctx, LinkInfo{Keys: b.LinkInfo().Keys}); err != nil {
		t.Fatalf("link through telehash-js: %v; a %+v; b %+v", err, a.Stats().RoutingStats, b.Stats().RoutingStats)
	}
	waitFor(t, "b sees a", func() bool { return b.Up(a.Hashname()) })
	runStreamPair(t, a, b, 256<<10)
	if p := a.lookup(b.Hashname()).path(); !p.isPipe() {
		t.Fatalf("a's path to b is %v, want the relay", p)
	}
	t.Logf("a %+v; b %+v", a.Stats().RoutingStats, b.Stats().RoutingStats)
}

// TestMeshRoutesForJS: our router introduces two telehash-js nodes and
// relays a stream between them.
func TestMeshRoutesForJS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	j1, j2 := startJSRouterPeer(t, ctx), startJSRouterPeer(t, ctx)
	opts := jsOpts()
	opts.Router = true
	opts.Allow = func(h Hashname) bool { return h == j1.hn || h == j2.hn }
	r := newTestMesh(t, "r-for-js", opts)
	for _, j := range []*jsNode{j1, j2} {
		j.send(map[string]any{"cmd": "link", "link": r.LinkInfo()})
		j.wait("link")
	}
	waitFor(t, "both js linked", func() bool { return r.Up(j1.hn) && r.Up(j2.hn) })
	j1.send(map[string]any{"cmd": "linkvia", "keys": j2.keys, "router": r.Hashname()})
	j1.wait("link")
	j1.send(map[string]any{"cmd": "stream", "size": 128 << 10})
	sent := j1.wait("sent")
	done := j1.wait("streamdone")
	if done["sha256"] != sent["sha256"] || done["bytes"] != sent["bytes"] {
		t.Fatalf("js sent %v, got back %v", sent, done)
	}
	s := r.Stats()
	if s.PeerRequests == 0 || s.Relayed < 200 {
		t.Fatalf("router stats %+v: want the stream relayed", s.RoutingStats)
	}
	t.Logf("router %+v", s.RoutingStats)
}
