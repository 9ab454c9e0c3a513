package telehash

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"reflect"
	"testing"
	"time"
)

func TestParsePathRequest(t *testing.T) {
	ap := netip.MustParseAddrPort
	for _, tc := range []struct {
		json string
		want []netip.AddrPort
		err  bool
	}{
		{`{}`, nil, false},
		{`{"paths":[]}`, nil, false},
		// telehash-js's request (ext/path.js: mesh.paths())
		{`{"paths":[{"type":"udp4","ip":"127.0.0.1","port":42424}]}`, []netip.AddrPort{ap("127.0.0.1:42424")}, false},
		// the spec's example: http and tcp6 skipped
		{`{"paths":[{"url":"http://192.168.0.36:42424","type":"http"},{"ip":"192.168.0.36","port":42424,"type":"udp4"},{"ip":"fe80::bae8:56ff:fe43:3de4","port":42424,"type":"tcp6"}]}`,
			[]netip.AddrPort{ap("192.168.0.36:42424")}, false},
		{`{"paths":[{"type":"udp6","ip":"2001:db8::1","port":9},{"type":"udp6","ip":"2001:db8::1","port":9}]}`, []netip.AddrPort{ap("[2001:db8::1]:9")}, false},
		// invalid entries skipped: wrong family, port 0, zone, unspecified, peer
		{`{"paths":[{"type":"udp4","ip":"::1","port":9},{"type":"udp6","ip":"127.0.0.1","port":9},{"type":"udp4","ip":"127.0.0.1","port":0},
			{"type":"udp6","ip":"fe80::1%eth0","port":9},{"type":"udp4","ip":"0.0.0.0","port":9},{"type":"peer","hn":"x"},{"type":"udp4","ip":"127.0.0.1","port":"9"}]}`, nil, false},
		{`{"paths":{}}`, nil, true},
		{`{"paths":null}`, nil, true},
		{`{"paths":[1]}`, nil, true},
	} {
		var extra map[string]json.RawMessage
		if err := json.Unmarshal([]byte(tc.json), &extra); err != nil {
			t.Fatal(err)
		}
		got, err := ParsePathRequest(extra)
		if (err != nil) != tc.err || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParsePathRequest(%s) = %v, %v; want %v (error %v)", tc.json, got, err, tc.want, tc.err)
		}
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Errorf("%v does not wrap ErrMalformed", err)
		}
	}
	// round trip: what PathOf renders parses back
	for _, a := range []netip.AddrPort{ap("10.0.0.1:1"), ap("[2001:db8::5]:65535"), ap("[::ffff:10.0.0.1]:5")} {
		b, _ := json.Marshal(map[string]any{"paths": []Path{PathOf(a)}, "path": PathOf(a)})
		var extra map[string]json.RawMessage
		json.Unmarshal(b, &extra)
		got, err := ParsePathRequest(extra)
		unmapped := netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
		if err != nil || len(got) != 1 || got[0] != unmapped {
			t.Errorf("%v -> %s -> %v %v", a, b, got, err)
		}
		if r, ok := ParsePathResponse(extra); !ok || r != unmapped {
			t.Errorf("response %v -> %s -> %v", a, b, r)
		}
	}
	if _, ok := ParsePathResponse(map[string]json.RawMessage{"path": json.RawMessage(`"x"`)}); ok {
		t.Error("a string path was accepted")
	}
}

// FuzzParsePathRequest: a path request's JSON comes from peers; parsing
// never panics, keeps at most maxPathEntries valid UDP paths, and every
// path kept renders to a path that parses to itself.
func FuzzParsePathRequest(f *testing.F) {
	f.Add([]byte(`{"paths":[{"type":"udp4","ip":"127.0.0.1","port":42424}],"path":{"type":"udp6","ip":"::1","port":1}}`))
	f.Add([]byte(`{"paths":[{"url":"http://192.168.0.36:42424","type":"http"},{"ip":"fe80::1","port":42424,"type":"udp6"}]}`))
	f.Add([]byte(`{"paths":[{"type":"udp4","ip":"::ffff:1.2.3.4","port":1e3}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var extra map[string]json.RawMessage
		if json.Unmarshal(b, &extra) != nil {
			return
		}
		paths, err := ParsePathRequest(extra)
		if err != nil {
			return
		}
		if len(paths) > maxPathEntries {
			t.Fatalf("%d paths", len(paths))
		}
		for _, a := range paths {
			if back, ok := PathOf(a).addrPort(); !ok || back != a {
				t.Fatalf("%v -> %+v -> %v", a, PathOf(a), back)
			}
		}
		if a, ok := ParsePathResponse(extra); ok {
			if back, ok := PathOf(a).addrPort(); !ok || back != a {
				t.Fatalf("response %v -> %v", a, back)
			}
		}
	})
}

// Each side of a link learns the address the other sees it at: through
// a relay (a NAT, as the peer sees it), the relay's address, both ways;
// and the
// paths a peer lists are kept to re-link it on, not used while up.
func TestPathChannelSeenAs(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a := newTestMesh(t, "path-a", fastOpts())
	bo := fastOpts()
	bo.Allow = allowAll
	b := newTestMesh(t, "path-b", bo)
	proxy := newWireProxy(t, b.Addr()) // a -> proxy -> b: b sees a at the proxy
	info := b.LinkInfo()
	info.Paths = []Path{proxy.path()}
	if _, err := a.Link(ctx, info); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, ctx, "both sides answered", func() bool {
		_, ab := a.SeenAs(b.Hashname())
		_, ba := b.SeenAs(a.Hashname())
		return ab && ba
	})
	if got, _ := a.SeenAs(b.Hashname()); got != proxy.addr() {
		t.Errorf("b sees a at %v, want the proxy %v", got, proxy.addr())
	}
	// and a reaches b at the proxy too (b listed its own address, which
	// a answered as well, but the proxy's is the news).
	if got, _ := b.SeenAs(a.Hashname()); got != proxy.addr() {
		t.Errorf("a sees b at %v, want the proxy %v", got, proxy.addr())
	}
	// a learned b's own address from b's request; the link stays on the proxy.
	pa := a.lookup(b.Hashname())
	if got := pa.learnedPaths(); len(got) != 1 || got[0] != b.Addr() {
		t.Errorf("a learned %v, want %v", got, b.Addr())
	}
	if got := pa.path().udp; got != proxy.addr() {
		t.Errorf("a's path to b moved to %v", got)
	}
	if s := a.Stats(); s.ChannelsOpened != 1 || s.ChannelsAccepted != 1 {
		t.Errorf("a opened %d channels and accepted %d, want 1 path channel each way", s.ChannelsOpened, s.ChannelsAccepted)
	}
}

// A path request is answered on every known path, each answer naming
// the path it went to; the new paths it lists are learned, not sent to.
func TestPathChannelAnswersKnownPaths(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a := newTestMesh(t, "pathx-a", fastOpts())
	bo := fastOpts()
	bo.Allow = allowAll
	b := newTestMesh(t, "pathx-b", bo)
	linkMeshes(t, a, b)
	other := newListener(t)
	otherAddr := other.conn.LocalAddr().(*net.UDPAddr).AddrPort()
	b.lookup(a.Hashname()).addPath(udpPath(otherAddr)) // a path b knows for a
	listed := newListener(t)
	listedAddr := listed.conn.LocalAddr().(*net.UDPAddr).AddrPort()
	paths, _ := json.Marshal([]Path{PathOf(a.Addr()), PathOf(listedAddr)})
	c, err := a.OpenChannel(ctx, b.Hashname(), PathType, false, &ChannelPacket{Extra: map[string]json.RawMessage{"paths": paths}})
	if err != nil {
		t.Fatal(err)
	}
	pkt, err := c.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := ParsePathResponse(pkt.Extra); !ok || got != a.Addr() {
		t.Fatalf("answer %s names %v", pkt, got)
	}
	waitUntil(t, ctx, "the other known path gets an answer", func() bool { return other.n.Load() > 0 })
	if got := b.lookup(a.Hashname()).learnedPaths(); !reflect.DeepEqual(got, []netip.AddrPort{a.Addr(), listedAddr}) {
		t.Fatalf("b learned %v", got)
	}
	time.Sleep(100 * time.Millisecond)
	if n := listed.n.Load(); n != 0 {
		t.Fatalf("the listed path got %d datagrams", n)
	}
}

// LocalPaths: the bound address, or the interfaces' for an unspecified
// one (Go binds "0.0.0.0" dual stack where it can, so IPv6 ones too),
// never an unspecified one.
func TestLocalPaths(t *testing.T) {
	m := newTestMesh(t, "lp-a", fastOpts())
	if got := m.LocalPaths(); !reflect.DeepEqual(got, []Path{PathOf(m.Addr())}) {
		t.Fatalf("bound to %v: %v", m.Addr(), got)
	}
	for _, listen := range []string{"0.0.0.0:0", "[::]:0"} {
		o := fastOpts()
		o.Listen = listen
		m := newTestMesh(t, "lp-"+listen, o)
		got := m.LocalPaths()
		if len(got) == 0 {
			t.Fatalf("%s: no paths", listen)
		}
		for _, p := range got {
			a, ok := p.addrPort()
			if !ok || a.Port() != m.Addr().Port() {
				t.Errorf("%s: path %+v", listen, p)
			}
		}
		t.Logf("%s: %+v", listen, got)
	}
}
