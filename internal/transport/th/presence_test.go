package th

import (
	"context"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/internal/thnode"
	"github.com/git-remote-daemon/git-remote-daemon/internal/transport"
	"github.com/git-remote-daemon/git-remote-daemon/telehash"
	"github.com/git-remote-daemon/git-remote-daemon/watch"
)

// failLink is a Link whose dials fail with a channel timeout; with
// arrival set it tells presence (thnode.PresenceLink).
type failLink struct {
	done    chan struct{}
	arrival chan struct{}
}

func (l *failLink) Dial(context.Context, thnode.Addr, string, bool) (thnode.Stream, error) {
	return nil, telehash.ErrChannelTimeout
}
func (l *failLink) Unlink(telehash.Hashname) {}
func (l *failLink) Done() <-chan struct{}    { return l.done }

type presenceLink struct{ *failLink }

func (l presenceLink) Arrival(telehash.Hashname) <-chan struct{} { return l.arrival }

type oneLink struct{ l thnode.Link }

func (o oneLink) Link() thnode.Link                                 { return o.l }
func (o oneLink) NextLink(context.Context, thnode.Link) thnode.Link { return nil }

// An xmpp:: watcher's passing failure waits for the node's next presence
// (Wake) over a link that tells it, and at most xmppRetryMax over one
// that does not; never only the daemon's growing backoff.
func TestXMPPFailureWakesOnPresence(t *testing.T) {
	id, err := telehash.GenerateIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	addr, err := thnode.ParseAnyURL("xmpp::bob@example.org?cs3a=" + id.Keys()["3a"])
	if err != nil {
		t.Fatal(err)
	}
	base := &failLink{done: make(chan struct{}), arrival: make(chan struct{})}
	for _, c := range []struct {
		name     string
		link     thnode.Link
		wantWake bool
	}{{"presence", presenceLink{base}, true}, {"no presence", base, false}} {
		w := &watcher{d: &Dialer{Nodes: oneLink{c.link}}, addr: addr}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := w.Watch(ctx, func(watch.Update) error { return nil })
		cancel()
		var tr *transport.Transient
		if !errors.As(err, &tr) {
			t.Fatalf("%s: %v, want a transport.Transient", c.name, err)
		}
		switch {
		case c.wantWake && (tr.Wake == nil || tr.Wake != (<-chan struct{})(base.arrival)):
			t.Errorf("%s: Wake %v, want the link's arrival channel", c.name, tr.Wake)
		case !c.wantWake && (tr.Wake != nil || tr.Max != xmppRetryMax):
			t.Errorf("%s: Wake %v, Max %v; want no Wake and Max %v", c.name, tr.Wake, tr.Max, xmppRetryMax)
		}
	}
}
