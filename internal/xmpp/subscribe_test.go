package xmpp

import (
	"sync"
	"testing"
	"time"
)

// TestIntegrationTwoLoginsOneAccepts: two logins of Bob's account, one
// pinning Carol (a git-remote-xmpp cloning from her) and one not (his
// daemon). The one that does not must not cancel what the other
// accepts: Carol keeps seeing Bob's nodes. A refusal ("unsubscribed")
// made the server send her their unavailable presence.
func TestIntegrationTwoLoginsOneAccepts(t *testing.T) {
	srv := startServer(t)
	dial(t, config(srv, "bob", 1)) // Bob's daemon: no peer
	dial(t, config(srv, "bob", 2, srv.JID("carol")))
	var mu sync.Mutex
	var events []Peer
	cc := config(srv, "carol", 3, srv.JID("bob"))
	cc.OnPeer = func(p Peer) {
		mu.Lock()
		events = append(events, p)
		mu.Unlock()
	}
	dial(t, cc)
	time.Sleep(2 * time.Second)
	mu.Lock()
	defer mu.Unlock()
	online := map[string]bool{}
	for _, p := range events {
		if !p.Online && online[p.Node.Hashname] {
			t.Fatalf("Carol saw Bob's node %s go while it ran on (events %v)", p.Node.Hashname[:4], events)
		}
		online[p.Node.Hashname] = p.Online
	}
	if !online[hn(2)] {
		t.Fatalf("Carol does not see the login of Bob's that pins her (events %v)", events)
	}
}
