package telehash

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"
)

// TestStreamOpenedAsSessionStarts: B opens a stream to A the moment its
// link to A is up, as a daemon watching A does; its first packet reaches
// A while A's handshake worker is still starting the session (made slow
// here, between the new keys and the new channel table). A decrypted it
// with the new keys and put the channel in the old session's table,
// then failed it with that session ("session reset by peer"), while B,
// its open acknowledged, waited for answers until its channel timed out
// (e2e th_roam under load: two daemons that watch each other started
// together; one's notify stream got no answer for ~11 s, then it
// unlinked, which reset the other's streams too).
func TestStreamOpenedAsSessionStarts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ao := nodeOpts()
	ao.Allow = allowAll
	a := newTestMesh(t, "switch-a", ao)
	var resets atomic.Int32
	a.Handle(StreamType, func(c *Channel) {
		s, err := NewStream(ctx, c)
		if err == nil {
			_, err = io.Copy(s, s)
		}
		if errors.Is(err, ErrSessionReset) {
			resets.Add(1)
		}
	})
	a.testSessionSwitch = func() { time.Sleep(300 * time.Millisecond) }
	var b atomic.Pointer[Mesh]
	pinged := make(chan error, 1)
	bo := nodeOpts()
	bo.Allow = allowAll
	bo.OnLink = func(peer Hashname, up bool) {
		if !up {
			return
		}
		go func() {
			// After A's worker took up B's answer, as under load.
			time.Sleep(100 * time.Millisecond)
			s, err := b.Load().OpenStream(ctx, peer, nil)
			if err == nil {
				err = pingStream(s, "hello")
			}
			pinged <- err
		}()
	}
	b.Store(newTestMesh(t, "switch-b", bo))
	if _, err := a.Link(ctx, b.Load().LinkInfo()); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-pinged:
		if err != nil {
			t.Fatalf("B's stream opened at link-up: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("B's stream opened at link-up got no answer in 5 s")
	}
	if n := resets.Load(); n > 0 {
		t.Fatalf("A failed %d stream(s) of the new session as the old session's", n)
	}
}
