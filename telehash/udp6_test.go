package telehash

import (
	"context"
	"net/netip"
	"testing"
	"time"
)

// A mesh bound dual stack ("[::]:0") is reached over udp4 and udp6 paths;
// an IPv4 peer's path stays IPv4 (not ::ffff:127.0.0.1), and the mesh
// links back to it on that path.
func TestMeshDualStack(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ao := fastOpts()
	ao.Listen = "[::]:0"
	ao.Allow = allowAll
	a := newTestMesh(t, "ds-a", ao)
	port := int(a.Addr().Port())
	b := newTestMesh(t, "ds-b", fastOpts())
	co := fastOpts()
	co.Listen = "[::1]:0"
	c := newTestMesh(t, "ds-c", co)
	if got := c.LinkInfo().Paths[0]; got.Type != "udp6" || got.IP != "::1" {
		t.Fatalf("c's link info %+v", got)
	}
	for _, tc := range []struct {
		m    *Mesh
		path Path
	}{
		{b, Path{Type: "udp4", IP: "127.0.0.1", Port: port}},
		{c, Path{Type: "udp6", IP: "::1", Port: port}},
	} {
		if _, err := tc.m.Link(ctx, LinkInfo{Keys: a.LinkInfo().Keys, Paths: []Path{tc.path}}); err != nil {
			t.Fatalf("%s link: %v", tc.path.Type, err)
		}
		waitUntil(t, ctx, "a up", func() bool { return a.Up(tc.m.Hashname()) })
		got := a.lookup(tc.m.Hashname()).path().udp
		if got != tc.m.Addr() {
			t.Fatalf("a sees %s at %v, want %v", tc.path.Type, got, tc.m.Addr())
		}
		runStreamPair(t, tc.m, a, 64<<10)
		runStreamPair(t, a, tc.m, 64<<10)
	}
	if p := a.lookup(b.Hashname()).path().udp; !p.Addr().Is4() || p.Addr() != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("IPv4 peer's path %v", p)
	}
}
