package xmpp

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net"
	"testing"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/internal/xmpptest"
)

// ejabberdConfig is config for an ejabberd.
func ejabberdConfig(srv *xmpptest.Ejabberd, user string, node int, peers ...string) Config {
	return Config{
		JID: srv.JID(user), Password: "pw-" + user, Server: srv.Addr(), TLS: StartTLS,
		CAFile: srv.CAFile, Node: Node{Hashname: hn(node)}, Peers: peers,
		BackoffMin: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond,
	}
}

// TestIntegrationEjabberd: the same session against ejabberd 23.01 as
// against Prosody: STARTTLS and SCRAM login, peers by presence and
// subscription, datagrams both ways, and a SOCKS5 bytestream through
// its mod_proxy65 (found by disco#items).
func TestIntegrationEjabberd(t *testing.T) {
	srv := xmpptest.StartEjabberd(t)
	for _, u := range []string{"alice", "bob"} {
		if err := srv.Register(u, "pw-"+u); err != nil {
			t.Fatal(err)
		}
	}
	ra, rb := newRecorder(), newRecorder()
	ca := ejabberdConfig(srv, "alice", 0, srv.JID("bob"))
	ra.hook(&ca)
	cb := ejabberdConfig(srv, "bob", 1, srv.JID("alice"))
	rb.hook(&cb)
	conns := make(chan net.Conn, 1)
	cb.OnBytestream = func(from string, c net.Conn) { conns <- c }
	a := dial(t, ca)
	b := dial(t, cb)
	t.Cleanup(func() {
		if t.Failed() {
			for _, u := range []string{"alice", "bob"} {
				out, err := srv.Ctl("get_roster", u, srv.Domain)
				t.Logf("roster of %s: %s %v", u, out, err)
			}
		}
	})
	pb := ra.waitPeerT(t, hn(1))
	pa := rb.waitPeerT(t, hn(0))
	if pb.JID != b.LocalJID() || pa.JID != a.LocalJID() {
		t.Fatalf("peer JIDs %s %s, sessions %s %s", pb.JID, pa.JID, b.LocalJID(), a.LocalJID())
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i, n := range []int{0, 1, 1400, MaxDatagram} {
		msg := make([]byte, n)
		rand.Read(msg)
		if err := a.Send(ctx, pb.JID, msg); err != nil {
			t.Fatal(err)
		}
		if err := b.Send(ctx, pa.JID, msg); err != nil {
			t.Fatal(err)
		}
		for _, r := range []*recorder{rb, ra} {
			select {
			case d := <-r.data:
				if !bytes.Equal(d.b, msg) {
					t.Fatalf("datagram %d: got %d bytes, want %d", i, len(d.b), n)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("datagram %d (%d bytes) not received\n%s", i, n, srv.Log())
			}
		}
	}
	// Batches pass ejabberd too.
	if m := burst(t, a, b.LocalJID(), rb, 300, 1200); m > 150 {
		t.Fatalf("300 datagrams took %d messages", m)
	}

	ac, err := a.OpenBytestream(ctx, pb.JID)
	if err != nil {
		t.Fatalf("bytestream: %v\n%s", err, srv.Log())
	}
	defer ac.Close()
	var bc net.Conn
	select {
	case bc = <-conns:
	case <-time.After(5 * time.Second):
		t.Fatal("bob got no bytestream")
	}
	defer bc.Close()
	msg := make([]byte, 1<<20)
	rand.Read(msg)
	done := make(chan struct{})
	go writeNudged(ac, msg, done)
	got := make([]byte, len(msg))
	_, err = io.ReadFull(bc, got)
	close(done)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("a->b: %v", err)
	}
	go bc.Write(msg[:1000])
	if _, err := io.ReadFull(ac, got[:1000]); err != nil || !bytes.Equal(got[:1000], msg[:1000]) {
		t.Fatalf("b->a: %v", err)
	}
}

// BenchmarkXMPPDatagramsEjabberd is BenchmarkXMPPDatagrams/1200 through
// ejabberd 23.01.
func BenchmarkXMPPDatagramsEjabberd(b *testing.B) {
	srv := xmpptest.StartEjabberd(b)
	for _, u := range []string{"alice", "bob"} {
		if err := srv.Register(u, "pw-"+u); err != nil {
			b.Fatal(err)
		}
	}
	ra, rb := newRecorder(), newRecorder()
	ca := ejabberdConfig(srv, "alice", 0, srv.JID("bob"))
	ra.hook(&ca)
	cb := ejabberdConfig(srv, "bob", 1, srv.JID("alice"))
	rb.hook(&cb)
	a := dial(b, ca)
	bs := dial(b, cb)
	ra.waitPeerT(b, hn(1))
	benchDatagrams(b, a, bs, rb, 1200)
}
