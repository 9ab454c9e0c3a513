package xmpppipe

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/telehash"
)

// TestOnlineMeansLinkable: a node Online reports has its pipe in the
// mesh already. git-remote-xmpp polls Online, then links; the pipe used
// to be offered to the mesh just after Online showed the node, and a
// link in between failed with "no udp4/udp6 path nor pipe" (xmpp.txtar's
// clone from Carol, once in three runs under load).
// The bridge's own hook widens the window as a loaded machine did.
func TestOnlineMeansLinkable(t *testing.T) {
	srv := server(t)
	// The dispatch goroutine descheduled between the two (a loaded
	// machine), 50 ms each time.
	testHookBeforeOffer = func() { time.Sleep(50 * time.Millisecond) }
	defer func() { testHookBeforeOffer = nil }()
	for i := range 5 {
		ma := newMesh(t, nil)
		mb := newMesh(t, func(h telehash.Hashname) bool { return h == ma.Hashname() })
		ba := bridgeOpts(t, srv, "alice", ma, true, Pin{JID: srv.JID("bob"), Hashname: mb.Hashname()})
		linked := make(chan error, 1)
		go func() {
			deadline := time.Now().Add(10 * time.Second)
			for ba.Online()[mb.Hashname()] == "" { // as thnode.WaitOnline, without its 20 ms naps
				if time.Now().After(deadline) {
					linked <- context.DeadlineExceeded
					return
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := ma.Link(ctx, telehash.LinkInfo{Keys: mb.LinkInfo().Keys})
			linked <- err
		}()
		bb := bridgeOpts(t, srv, "bob", mb, true, Pin{JID: srv.JID("alice"), Hashname: ma.Hashname()})
		if err := <-linked; err != nil {
			if strings.Contains(err.Error(), "nor pipe") {
				t.Fatalf("attempt %d: Online showed the node before the mesh had its pipe: %v", i, err)
			}
			t.Fatalf("attempt %d: %v", i, err)
		}
		bb.Close()
		ba.Close()
		ma.Close()
		mb.Close()
	}
}
