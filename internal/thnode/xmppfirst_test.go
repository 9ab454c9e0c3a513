package thnode

import (
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/internal/xmpp"
	"github.com/git-remote-daemon/git-remote-daemon/internal/xmpptest"
	"github.com/git-remote-daemon/git-remote-daemon/telehash"
)

// A first contact pins the node whose presence carries a key matching
// its hashname; a node of before first contact (no key) makes
// ErrXMPPNoKey; a presence whose key is another node's is ignored.
func TestIntegrationXMPPFirstContact(t *testing.T) {
	srv := xmpptest.Start(t)
	for _, u := range []string{"alice", "bob"} {
		if err := srv.Register(u, "pw-"+u); err != nil {
			t.Fatal(err)
		}
	}
	cfg := func(user string, n xmpp.Node, peers ...string) xmpp.Config {
		return xmpp.Config{JID: srv.JID(user), Password: "pw-" + user, Server: srv.Addr(), TLS: xmpp.StartTLS,
			CAFile: srv.CAFile, Node: n, Peers: peers}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	bob, _ := telehash.GenerateIdentity(rand.Reader)
	alice, _ := telehash.GenerateIdentity(rand.Reader)
	other, _ := telehash.GenerateIdentity(rand.Reader)
	withAlice := func(t *testing.T, n xmpp.Node, wait time.Duration) ([]PinnedNode, error) {
		t.Helper()
		s, err := xmpp.Dial(ctx, cfg("alice", n, srv.JID("bob")))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		return xmppFirstContact(ctx, bob, cfg("bob", xmpp.Node{}), srv.JID("alice"), "abcdefgh23456712", wait, nil)
	}

	t.Run("pinned", func(t *testing.T) {
		got, err := withAlice(t, xmpp.NodeOf(string(alice.Hashname()), alice.Keys()), 15*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].Addr.Hashname != alice.Hashname() || got[0].Addr.XMPP != srv.JID("alice") || got[0].Addr.Repo != "abcdefgh23456712" {
			t.Fatalf("pinned %+v", got)
		}
		a, err := ParseXMPPURL(got[0].URL)
		if err != nil || a.Hashname != alice.Hashname() || !strings.Contains(got[0].URL, "cs3a="+alice.Keys()["3a"]) {
			t.Fatalf("URL %s: %+v %v", got[0].URL, a, err)
		}
	})
	t.Run("old node without key", func(t *testing.T) {
		_, err := withAlice(t, xmpp.Node{Hashname: string(alice.Hashname())}, 15*time.Second)
		if !errors.Is(err, ErrXMPPNoKey) || !strings.Contains(err.Error(), "put its key in the URL") {
			t.Fatalf("err %v, want ErrXMPPNoKey", err)
		}
	})
	t.Run("key of another node", func(t *testing.T) {
		n := xmpp.NodeOf(string(alice.Hashname()), other.Keys())
		_, err := withAlice(t, n, 3*time.Second)
		if err == nil || !strings.Contains(err.Error(), "no node of the account is online") {
			t.Fatalf("err %v, want none online (the presence ignored)", err)
		}
	})
}
