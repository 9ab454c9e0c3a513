package xmpppipe

import (
	"context"
	"testing"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/internal/xmpp"
	"github.com/git-remote-daemon/git-remote-daemon/internal/xmpptest"
	"github.com/git-remote-daemon/git-remote-daemon/telehash"
)

// BenchmarkXMPPStreamEjabberd is BenchmarkXMPPStream/messages through
// ejabberd 23.01: 10 MiB each way, packets in messages only.
func BenchmarkXMPPStreamEjabberd(b *testing.B) {
	srv := xmpptest.StartEjabberd(b)
	for _, u := range []string{"alice", "bob"} {
		if err := srv.Register(u, "pw-"+u); err != nil {
			b.Fatal(err)
		}
	}
	ma := newMesh(b, nil)
	mb := newMesh(b, func(h telehash.Hashname) bool { return h == ma.Hashname() })
	open := func(user string, m *telehash.Mesh, pin Pin) *Bridge {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		br, err := New(ctx, Config{
			Session: xmpp.Config{JID: srv.JID(user), Password: "pw-" + user, Server: srv.Addr(),
				TLS: xmpp.StartTLS, CAFile: srv.CAFile},
			Mesh: m, Pins: []Pin{pin}, Logger: logger(), NoBytestreams: true,
		})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { br.Close() })
		return br
	}
	ba := open("alice", ma, Pin{JID: srv.JID("bob"), Hashname: mb.Hashname()})
	bb := open("bob", mb, Pin{JID: srv.JID("alice"), Hashname: ma.Hashname()})
	waitOnline(b, ba, mb.Hashname())
	waitOnline(b, bb, ma.Hashname())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := ma.Link(ctx, telehash.LinkInfo{Keys: mb.LinkInfo().Keys}); err != nil {
		b.Fatal(err)
	}
	const n = 10 << 20
	b.SetBytes(2 * n)
	b.ResetTimer()
	for range b.N {
		up, down := streamBothWays(b, ma, mb, n)
		b.ReportMetric(mbps(n, up), "up-MB/s")
		b.ReportMetric(mbps(n, down), "down-MB/s")
	}
}
