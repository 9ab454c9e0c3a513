package thnode

import (
	"crypto/rand"
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/git-remote-daemon/git-remote-daemon/telehash"
)

func TestRoundTrip(t *testing.T) {
	id, err := telehash.GenerateIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keys := id.Keys()
	other, _ := telehash.GenerateIdentity(rand.Reader)
	third, _ := telehash.GenerateIdentity(rand.Reader)
	routers := []telehash.Hashname{other.Hashname(), third.Hashname()}
	slices.Sort(routers)
	for _, a := range []Addr{
		{Hashname: id.Hashname()},
		{Hashname: id.Hashname(), Keys: keys},
		{Hashname: id.Hashname(), Keys: keys, Paths: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:42424"), netip.MustParseAddrPort("192.0.2.1:1")}},
		{Hashname: id.Hashname(), Keys: keys, Paths: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:42424")}, Repo: "abcdefgh23456712"},
		{Hashname: id.Hashname(), Repo: "my-repo.v2_x"},
		{Hashname: id.Hashname(), Keys: keys, Routers: []telehash.Hashname{other.Hashname()}},
		{Hashname: id.Hashname(), Keys: keys, Paths: []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:1")}, Routers: routers, Repo: "r"},
	} {
		got, err := ParseAddr(a.String())
		if err != nil {
			t.Fatalf("ParseAddr(%s): %v", a, err)
		}
		if !reflect.DeepEqual(got, a) {
			t.Errorf("ParseAddr(%s) = %+v, want %+v", a, got, a)
		}
		if got.String() != a.String() {
			t.Errorf("String changed: %s vs %s", got, a)
		}
	}
	// Vector from the notes: a 3a key and its hashname.
	a, err := ParseAddr("th::nzf4f6j7ylv53z3m4egrwltv2t2yks4rtpaimeg3avwqsoshqxba?cs3a=hp6yglmmqwcbw5hno37uauh6fn6dx5oj7s5vtapaifrur2jv6zha&udp4=127.0.0.1:9")
	if err != nil || !a.Reachable() {
		t.Fatalf("vector: %+v %v", a, err)
	}
	// A router hint: reachable with a key and no path; a "peer" path.
	r, err := ParseAddr("th::" + string(id.Hashname()) + "?cs3a=" + keys["3a"] + "&router=" + string(other.Hashname()))
	if err != nil || !r.Reachable() {
		t.Fatalf("router hint: %+v %v", r, err)
	}
	if info := r.LinkInfo(); len(info.Paths) != 1 || info.Paths[0].Type != "peer" || info.Paths[0].HN != other.Hashname() {
		t.Errorf("router hint: link info paths %+v", info.Paths)
	}
	if r, _ := ParseAddr("th::" + string(id.Hashname()) + "?router=" + string(other.Hashname())); r.Reachable() {
		t.Errorf("a router hint without a key is not reachable")
	}
}

func TestErrors(t *testing.T) {
	other, _ := telehash.GenerateIdentity(rand.Reader)
	id, _ := telehash.GenerateIdentity(rand.Reader)
	for _, s := range []string{
		"", "th::", "th::short", "th::" + string(id.Hashname()) + "?udp4=nope",
		"th::" + string(id.Hashname()) + "?udp4=[::1]:5", "th::" + string(id.Hashname()) + "?udp4=127.0.0.1:0",
		"th::" + string(id.Hashname()) + "?cs3a=" + other.Keys()["3a"],
		"th::" + string(id.Hashname()) + "?cs3a=!!",
		"th::" + string(id.Hashname()) + "?foo=bar",
		"th::" + string(id.Hashname()) + "?cs3a=a&cs3a=b",
		"th::" + string(id.Hashname()) + "?%zz",
		"th::" + string(id.Hashname()) + "?repo=",
		"th::" + string(id.Hashname()) + "?repo=a&repo=b",
		"th::" + string(id.Hashname()) + "?repo=../etc",
		"th::" + string(id.Hashname()) + "?router=nope",
		"th::" + string(id.Hashname()) + "?router=" + string(id.Hashname()),
		"th::" + string(id.Hashname()) + "?repo=UPPER",
		"th::" + string(id.Hashname()) + "?repo=" + strings.Repeat("a", 65),
	} {
		if a, err := ParseAddr(s); err == nil {
			t.Errorf("ParseAddr(%q) = %+v, want an error", s, a)
		} else if !errors.Is(err, ErrMalformedAddr) {
			t.Errorf("ParseAddr(%q): %v does not wrap ErrMalformedAddr", s, err)
		}
	}
}

// FuzzParseAddr: th:: URLs come from other people; parsing never panics and
// what parses renders to a URL that parses to the same address.
func FuzzParseAddr(f *testing.F) {
	f.Add("th::nzf4f6j7ylv53z3m4egrwltv2t2yks4rtpaimeg3avwqsoshqxba?cs3a=hp6yglmmqwcbw5hno37uauh6fn6dx5oj7s5vtapaifrur2jv6zha&udp4=127.0.0.1:9")
	f.Add("th::nzf4f6j7ylv53z3m4egrwltv2t2yks4rtpaimeg3avwqsoshqxba")
	f.Add("th::nzf4f6j7ylv53z3m4egrwltv2t2yks4rtpaimeg3avwqsoshqxba?cs3a=hp6yglmmqwcbw5hno37uauh6fn6dx5oj7s5vtapaifrur2jv6zha&udp6=[::1]:9&udp6=[::ffff:10.0.0.1]:7")
	f.Add("th::27ywx5e5ylzxfzxrhptowvwntqrd3jhksyxrfkzi6jfn64d3lwxa?cs3a=eg3fxjnjkz763cjfnhyabeftyf75m2s4gll3gvmuacegax5h6nia&im1a=f2lbdb6i7vw3q4l4pcxmcnfpd5buo2dm2iywfonkp3pfxxgvqqza&udp4=127.0.0.1:9")
	f.Add("th::nzf4f6j7ylv53z3m4egrwltv2t2yks4rtpaimeg3avwqsoshqxba?cs3a=hp6yglmmqwcbw5hno37uauh6fn6dx5oj7s5vtapaifrur2jv6zha&udp4=127.0.0.1:9&repo=abcdefgh23456712")
	f.Add("th::nzf4f6j7ylv53z3m4egrwltv2t2yks4rtpaimeg3avwqsoshqxba?cs3a=hp6yglmmqwcbw5hno37uauh6fn6dx5oj7s5vtapaifrur2jv6zha&router=27ywx5e5ylzxfzxrhptowvwntqrd3jhksyxrfkzi6jfn64d3lwxa")
	f.Add("th::nzf4f6j7ylv53z3m4egrwltv2t2yks4rtpaimeg3avwqsoshqxba?router=27ywx5e5ylzxfzxrhptowvwntqrd3jhksyxrfkzi6jfn64d3lwxa&router=27ywx5e5ylzxfzxrhptowvwntqrd3jhksyxrfkzi6jfn64d3lwxa&udp4=127.0.0.1:9")
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAddr(s)
		if err != nil {
			return
		}
		b, err := ParseAddr(a.String())
		if err != nil || !reflect.DeepEqual(a, b) {
			t.Fatalf("%q -> %s -> %+v, %v", s, a, b, err)
		}
		// The short form names the same node.
		c, err := ParseAddr(a.Short().String())
		if err != nil || c.Hashname != a.Hashname || len(c.Paths) != len(a.Paths) || c.Reachable() != a.Reachable() {
			t.Fatalf("%q -> short %s -> %+v, %v", s, a.Short(), c, err)
		}
	})
}
