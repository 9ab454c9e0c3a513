package thnode

import (
	"testing"
)

// TestListenAddr: thListen wins; else th:: remotes ask for an ephemeral
// port, on loopback only when every peer is on loopback; else no node.
func TestListenAddr(t *testing.T) {
	bob := thURL(identity(t))
	for _, tc := range []struct {
		name   string
		kv     []string
		listen string
		want   bool
	}{
		{"nothing", []string{"remote.o.url", "/srv/x.git"}, "", false},
		{"thListen", []string{"remotedaemon.thlisten", "0.0.0.0:4242"}, "0.0.0.0:4242", true},
		{"hashname only", []string{"remote.bob.url", bob}, "127.0.0.1:0", true},
		{"loopback peer", []string{"remote.bob.url", bob + "&udp4=127.0.0.1:9"}, "127.0.0.1:0", true},
		{"remote peer", []string{"remote.bob.url", bob, "remote.bob.url", bob + "&udp4=192.0.2.1:9"}, "0.0.0.0:0", true},
		{"insteadOf", []string{"url.th::.insteadof", "peer:", "remote.bob.url", "peer:" + bob[len(Scheme):]}, "127.0.0.1:0", true},
		{"thListen and remote", []string{"remote.bob.url", bob, "remotedaemon.thlisten", "127.0.0.1:4242"}, "127.0.0.1:4242", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			listen, want := listenAddr(config(t, tc.kv...))
			if listen != tc.listen || want != tc.want {
				t.Errorf("listenAddr = %q, %v; want %q, %v", listen, want, tc.listen, tc.want)
			}
		})
	}
}

// TestPickURL: the daemon's GIT_REMOTE_TH_NODE picks one of a remote's
// URLs; an unknown or empty one keeps the URL git gave.
func TestPickURL(t *testing.T) {
	a, b := thURL(identity(t)), thURL(identity(t))
	cfg := config(t, "remote.r.url", a, "remote.r.url", b)
	aAddr, _ := ParseAddr(a)
	bAddr, _ := ParseAddr(b)
	for _, tc := range []struct {
		name, want string
		got        Addr
		url        string
	}{
		{"no choice", "", aAddr, a},
		{"the other node", string(bAddr.Hashname), bAddr, b[len(Scheme):]},
		{"unknown node", string(identity(t).Hashname()), aAddr, a},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, url, err := PickURL(cfg, "r", a, tc.want)
			if err != nil {
				t.Fatal(err)
			}
			if addr.Hashname != tc.got.Hashname || url != tc.url {
				t.Errorf("PickURL = %s %q; want %s %q", addr.Hashname, url, tc.got.Hashname, tc.url)
			}
		})
	}
	if _, _, err := PickURL(cfg, "r", "th::nonsense", ""); err == nil {
		t.Error("a malformed URL was accepted")
	}
}
