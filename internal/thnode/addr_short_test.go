package thnode

import (
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/git-remote-daemon/git-remote-daemon/telehash"
)

// jsIdentity is a telehash-js identity with cipher sets 1a, 2a and 3a and
// the hashname telehash-js computed for it (telehash/testdata/gen_vectors.js).
func jsIdentity(t *testing.T) (telehash.Hashname, map[string]string) {
	t.Helper()
	raw, err := os.ReadFile("../../telehash/testdata/telehash_js_vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Hashnames []struct {
			Keys     map[string]string
			Hashname telehash.Hashname
		}
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	for _, h := range v.Hashnames {
		if len(h.Keys) == 3 {
			return h.Hashname, h.Keys
		}
	}
	t.Fatal("no vector with three cipher sets")
	return "", nil
}

// A telehash-js node's URL with all its keys is long; the short form
// carries the cs3a key, the 1a key (shorter than its digest) and the
// digest of the 2a key, parses back to the same hashname, and links
// with the same information.
func TestShortAddr(t *testing.T) {
	hn, keys := jsIdentity(t)
	long := Addr{Hashname: hn, Keys: keys, Paths: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:42424")}}
	if _, err := ParseAddr(long.String()); err != nil {
		t.Fatalf("long form: %v", err)
	}
	short := long.Short()
	s := short.String()
	t.Logf("long %d chars, short %d chars: %s", len(long.String()), len(s), s)
	if !strings.Contains(s, "&im2a=") || strings.Contains(s, "cs2a=") || !strings.Contains(s, "cs1a=") || !strings.Contains(s, "cs3a=") {
		t.Fatalf("short form %s", s)
	}
	if len(s) >= len(long.String())/2 {
		t.Fatalf("short form is %d chars, the long one %d", len(s), len(long.String()))
	}
	got, err := ParseAddr(s)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, short) || got.Hashname != hn || !got.Reachable() {
		t.Fatalf("ParseAddr(%s) = %+v, want %+v", s, got, short)
	}
	if h, err := telehash.HashnameFromParts(got.LinkInfo().Keys, got.LinkInfo().Intermediates); err != nil || h != hn {
		t.Fatalf("LinkInfo names %s (%v), want %s", h, err, hn)
	}
	// Only the 3a key and digests for the rest: still the same node.
	ims, _ := telehash.Intermediates(keys)
	only3a := "th::" + string(hn) + "?cs3a=" + keys["3a"] + "&im1a=" + ims["1a"] + "&im2a=" + ims["2a"]
	if a, err := ParseAddr(only3a); err != nil || a.Hashname != hn {
		t.Fatalf("%s: %+v %v", only3a, a, err)
	}
	// A 3a-only identity: Short changes nothing.
	a := Addr{Hashname: hn, Keys: map[string]string{"3a": keys["3a"]}}
	if b := a.Short(); !reflect.DeepEqual(a, b) {
		t.Fatalf("Short of %+v = %+v", a, b)
	}
	// A wrong or missing digest names another node.
	for _, bad := range []string{
		"th::" + string(hn) + "?cs3a=" + keys["3a"] + "&im1a=" + ims["2a"] + "&im2a=" + ims["2a"],
		"th::" + string(hn) + "?cs3a=" + keys["3a"] + "&im2a=" + ims["2a"],
		"th::" + string(hn) + "?cs3a=" + keys["3a"] + "&cs1a=" + keys["1a"] + "&im1a=" + ims["1a"] + "&im2a=" + ims["2a"],
		"th::" + string(hn) + "?im1a=" + ims["1a"] + "&im2a=" + ims["2a"] + "&im3a=" + ims["3a"],
		"th::" + string(hn) + "?cs3a=" + keys["3a"] + "&cs1a=" + keys["1a"] + "&im2a=" + ims["2a"][:50],
		"th::" + string(hn) + "?cs3a=" + keys["3a"] + "&cs1a=" + keys["1a"] + "&im2a=" + ims["2a"] + "&im2a=" + ims["2a"],
		"th::" + string(hn) + "?cs3a=" + keys["3a"] + "&cs1a=" + keys["1a"] + "&im00=" + ims["2a"],
	} {
		if a, err := ParseAddr(bad); err == nil {
			t.Errorf("ParseAddr(%q) = %+v, want an error", bad, a)
		} else if !errors.Is(err, ErrMalformedAddr) {
			t.Errorf("%v does not wrap ErrMalformedAddr", err)
		}
	}
}

func TestAddrUDP6(t *testing.T) {
	hn := telehash.Hashname("nzf4f6j7ylv53z3m4egrwltv2t2yks4rtpaimeg3avwqsoshqxba")
	key := "hp6yglmmqwcbw5hno37uauh6fn6dx5oj7s5vtapaifrur2jv6zha"
	s := "th::" + string(hn) + "?cs3a=" + key + "&udp4=127.0.0.1:9&udp6=[::1]:9&udp6=[2001:db8::5]:4242"
	a, err := ParseAddr(s)
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:9"), netip.MustParseAddrPort("[2001:db8::5]:4242"), netip.MustParseAddrPort("[::1]:9")}
	if !reflect.DeepEqual(a.Paths, want) {
		t.Fatalf("paths %v, want %v", a.Paths, want)
	}
	if got := a.String(); got != "th::"+string(hn)+"?cs3a="+key+"&udp4=127.0.0.1:9&udp6=[2001:db8::5]:4242&udp6=[::1]:9" {
		t.Fatalf("String() = %s", got)
	}
	info := a.LinkInfo()
	if info.Paths[1] != (telehash.Path{Type: "udp6", IP: "2001:db8::5", Port: 4242}) {
		t.Fatalf("link paths %+v", info.Paths)
	}
	// A v4-mapped udp6 address is an IPv4 path.
	m, err := ParseAddr("th::" + string(hn) + "?cs3a=" + key + "&udp6=[::ffff:127.0.0.1]:9")
	if err != nil || len(m.Paths) != 1 || !m.Paths[0].Addr().Is4() || !strings.HasSuffix(m.String(), "&udp4=127.0.0.1:9") {
		t.Fatalf("mapped: %+v %v", m, err)
	}
	for _, bad := range []string{"udp6=127.0.0.1:9", "udp6=[::1]:0", "udp6=[fe80::1%25eth0]:9", "udp6=::1:9", "udp4=[::1]:9"} {
		if a, err := ParseAddr("th::" + string(hn) + "?cs3a=" + key + "&" + bad); err == nil {
			t.Errorf("%s parsed: %+v", bad, a)
		}
	}
}
