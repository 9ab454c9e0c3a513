package thnode

import (
	"crypto/rand"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/git-remote-daemon/git-remote-daemon/internal/gitcfg"
	"github.com/git-remote-daemon/git-remote-daemon/internal/xmpp"
	"github.com/git-remote-daemon/git-remote-daemon/telehash"
)

func TestXMPPURLRoundTrip(t *testing.T) {
	id, err := telehash.GenerateIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key := id.Keys()["3a"]
	for _, a := range []Addr{
		{Hashname: id.Hashname(), Keys: map[string]string{"3a": key}, XMPP: "alice@example.org"},
		{Hashname: id.Hashname(), Keys: map[string]string{"3a": key}, XMPP: "a+b@example.org", Repo: "abcdefgh23456712"},
	} {
		u := XMPPURL(a.XMPP, a)
		got, err := ParseXMPPURL(u)
		if err != nil {
			t.Fatalf("ParseXMPPURL(%s): %v", u, err)
		}
		if !reflect.DeepEqual(got, a) {
			t.Errorf("ParseXMPPURL(%s) = %+v, want %+v", u, got, a)
		}
		if XMPPURL(got.XMPP, got) != u {
			t.Errorf("XMPPURL changed: %s vs %s", XMPPURL(got.XMPP, got), u)
		}
		if !got.Reachable() {
			t.Errorf("%s: not reachable (the pipe is its path)", u)
		}
		// Through the lending socket: the th:: form keeps the account.
		back, err := ParseAddr(got.String())
		if err != nil || !reflect.DeepEqual(back, got) {
			t.Errorf("th:: form %s: %+v, %v", got.String(), back, err)
		}
		any, err := ParseAnyURL(u)
		if err != nil || !reflect.DeepEqual(any, got) {
			t.Errorf("ParseAnyURL(%s): %+v, %v", u, any, err)
		}
	}
	// Without hn: the key names the node.
	a, err := ParseXMPPURL("xmpp::bob@localhost?cs3a=" + key)
	if err != nil || a.Hashname != id.Hashname() || a.XMPP != "bob@localhost" {
		t.Fatalf("without hn: %+v, %v", a, err)
	}
}

func TestXMPPURLErrors(t *testing.T) {
	id, _ := telehash.GenerateIdentity(rand.Reader)
	other, _ := telehash.GenerateIdentity(rand.Reader)
	key := id.Keys()["3a"]
	for _, tc := range []struct{ url, want string }{
		{"xmpp::", "not user@domain"},
		{"xmpp::example.org?cs3a=" + key, "not user@domain"},
		{"xmpp::bob@example.org/laptop?cs3a=" + key, "names a resource"},
		{"xmpp::bob@example.org?repo=abcdefgh23456712&bogus=1", "without the peer node's key"},
		{"xmpp::bob@example.org?repo=UPPER", "repo"},
		{"xmpp::bob@example.org?repo=abcdefgh23456712&repo=abcdefgh23456712", "without the peer node's key"},
		{"xmpp::bob@example.org?hn=" + string(id.Hashname()), "without the peer node's key"},
		{"xmpp::bob@example.org?cs3a=" + key + "&hn=" + string(other.Hashname()), "the keys belong to"},
		{"xmpp::bob@example.org?cs3a=" + key + "&udp4=127.0.0.1:1", "no place"},
		{"xmpp::bob@example.org?cs3a=" + key + "&xmpp=eve@example.org", "no place"},
		{"xmpp::bob@example.org?cs3a=" + key + "&repo=UPPER", "repo"},
		{"xmpp::bob@example.org?cs3a=" + key + "&hn=a&hn=b", "one URL per node"},
		{"xmpp::bob@example.org?cs3a=" + key + "&bogus=1", "unknown parameter"},
		{"xmpp::bob@example.org?cs3a=%zz", "invalid URL escape"},
	} {
		_, err := ParseXMPPURL(tc.url)
		if err == nil || !errors.Is(err, ErrMalformedAddr) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseXMPPURL(%q) = %v, want %q", tc.url, err, tc.want)
		}
	}
}

// A bare account is an unpinned remote: accepted by ParseXMPPURL with
// ErrXMPPUnpinned, so every caller that takes only err == nil (the
// peers a node authorizes, the nodes it links to) leaves it out.
func TestXMPPURLUnpinned(t *testing.T) {
	for u, want := range map[string]Addr{
		"xmpp::bob@example.org":                       {XMPP: "bob@example.org"},
		"bob@Example.org":                             {XMPP: "bob@example.org"},
		"xmpp::bob@example.org?repo=abcdefgh23456712": {XMPP: "bob@example.org", Repo: "abcdefgh23456712"},
	} {
		a, err := ParseXMPPURL(u)
		if !errors.Is(err, ErrXMPPUnpinned) || !reflect.DeepEqual(a, want) {
			t.Errorf("ParseXMPPURL(%q) = %+v, %v; want %+v, ErrXMPPUnpinned", u, a, err, want)
		}
		if _, err := ParseAnyURL(u); err == nil {
			t.Errorf("ParseAnyURL(%q) took an unpinned URL", u)
		}
	}
	cfg := cfgOf(t, "remote.alice.url\nxmpp::alice@example.org", "remotedaemon.xmppjid\nbob@example.org")
	if p := xmppPeers(cfg); len(p) != 0 {
		t.Errorf("an unpinned remote makes peers: %+v", p)
	}
}

func FuzzParseXMPPURL(f *testing.F) {
	id, _ := telehash.GenerateIdentity(rand.Reader)
	key := id.Keys()["3a"]
	for _, s := range []string{
		"xmpp::bob@localhost?cs3a=" + key,
		"xmpp::bob@localhost?cs3a=" + key + "&hn=" + string(id.Hashname()) + "&repo=abc",
		"xmpp::bob@localhost/r?cs3a=x", "xmpp::@?", "xmpp::a@b?im2a=" + key,
		"xmpp::alice@localhost", "alice@localhost?repo=abcdefgh23456712", "xmpp::alice@localhost?repo=", "xmpp::alice@localhost?hn=x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseXMPPURL(s)
		if errors.Is(err, ErrXMPPUnpinned) {
			if a.XMPP == "" || a.Hashname != "" || len(a.Keys) != 0 {
				t.Fatalf("unpinned %q: %+v", s, a)
			}
			return
		}
		if err != nil {
			return
		}
		u := XMPPURL(a.XMPP, a)
		b, err := ParseXMPPURL(u)
		if err != nil {
			t.Fatalf("%q parsed, its form %q does not: %v", s, u, err)
		}
		if b.Hashname != a.Hashname || b.XMPP != a.XMPP || b.Repo != a.Repo || b.Keys["3a"] != a.Keys["3a"] {
			t.Fatalf("round trip of %q: %+v vs %+v", s, a, b)
		}
		if c, err := ParseAddr(a.String()); err != nil || c.XMPP != a.XMPP {
			t.Fatalf("th:: form of %q: %+v, %v", s, c, err)
		}
	})
}

func cfgOf(t *testing.T, lines ...string) *gitcfg.Config {
	t.Helper()
	c, err := gitcfg.Parse([]byte(strings.Join(lines, "\x00") + "\x00"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestReadXMPPSettings(t *testing.T) {
	id, _ := telehash.GenerateIdentity(rand.Reader)
	u := "xmpp::bob@localhost?cs3a=" + id.Keys()["3a"]
	remote := "remote.bob.url\n" + u
	if _, ok, err := ReadXMPPSettings(cfgOf(t, "remote.o.url\n/tmp/x")); ok || err != nil {
		t.Fatalf("no xmpp:: remote: ok=%v err=%v", ok, err)
	}
	if _, ok, err := ReadXMPPSettings(cfgOf(t, remote)); !ok || !errors.Is(err, ErrNoXMPPAccount) {
		t.Fatalf("no account: ok=%v err=%v", ok, err)
	}
	x, ok, err := ReadXMPPSettings(cfgOf(t, remote, "remotedaemon.xmppjid\nalice@localhost", "remotedaemon.xmpptls\ndirect-tls"))
	if !ok || err != nil || x.TLS != xmpp.DirectTLS || len(x.Pins) != 1 || x.Pins[0].JID != "bob@localhost" || x.Pins[0].Hashname != id.Hashname() {
		t.Fatalf("settings: %+v ok=%v err=%v", x, ok, err)
	}
	// Plaintext: only allowed explicitly, and only to a loopback server.
	base := []string{remote, "remotedaemon.xmppjid\nalice@localhost", "remotedaemon.xmpptls\nplaintext"}
	for _, tc := range []struct {
		extra []string
		ok    bool
	}{
		{nil, false},
		{[]string{"remotedaemon.xmppserver\n127.0.0.1:5222"}, false},
		{[]string{"remotedaemon.xmppallowplaintext\ntrue"}, false},
		{[]string{"remotedaemon.xmppallowplaintext\ntrue", "remotedaemon.xmppserver\nxmpp.example.org:5222"}, false},
		{[]string{"remotedaemon.xmppallowplaintext\ntrue", "remotedaemon.xmppserver\n192.0.2.1:5222"}, false},
		{[]string{"remotedaemon.xmppallowplaintext\ntrue", "remotedaemon.xmppserver\n127.0.0.1:5222"}, true},
		{[]string{"remotedaemon.xmppallowplaintext\ntrue", "remotedaemon.xmppserver\n[::1]:5222"}, true},
	} {
		_, _, err := ReadXMPPSettings(cfgOf(t, append(append([]string{}, base...), tc.extra...)...))
		if (err == nil) != tc.ok {
			t.Errorf("plaintext with %q: err=%v, want ok=%v", tc.extra, err, tc.ok)
		}
	}
	if _, _, err := ReadXMPPSettings(cfgOf(t, remote, "remotedaemon.xmppjid\nalice@localhost", "remotedaemon.xmpptls\nsometimes")); err == nil {
		t.Error("unknown TLS mode accepted")
	}
}

// TestXMPPPermissions: the peers of xmpp:: remotes read, and write with
// daemonAllowPush, as th:: ones do.
func TestXMPPPermissions(t *testing.T) {
	r, _ := telehash.GenerateIdentity(rand.Reader)
	w, _ := telehash.GenerateIdentity(rand.Reader)
	stranger, _ := telehash.GenerateIdentity(rand.Reader)
	var a AllowList
	a.Set(cfgOf(t,
		"remote.r.url\nxmpp::r@localhost?cs3a="+r.Keys()["3a"],
		"remote.w.url\nxmpp::w@localhost?cs3a="+w.Keys()["3a"], "remote.w.daemonallowpush\ntrue"))
	if got := a.Permission(r.Hashname()); got != Read {
		t.Errorf("reader: %v", got)
	}
	if got := a.Permission(w.Hashname()); got != Write {
		t.Errorf("writer: %v", got)
	}
	if got := a.Permission(stranger.Hashname()); got != None {
		t.Errorf("stranger: %v", got)
	}
}
