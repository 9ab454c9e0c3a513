package telehash

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"
)

// nodeOpts are the timers of thnode (internal/thnode: a keepalive every
// 10 s), where roaming is slow if anything waits for them.
func nodeOpts() MeshOptions {
	return MeshOptions{Keepalive: 10 * time.Second, HandshakeTimeout: 30 * time.Second, ChannelTimeout: 10 * time.Second}
}

// echoHandler echoes stream channels.
func echoHandler(ctx context.Context) func(*Channel) {
	return func(c *Channel) {
		s, err := NewStream(ctx, c)
		if err != nil {
			return
		}
		_, _ = io.Copy(s, s)
		s.Close()
	}
}

// pingStream writes msg on s and reads it back.
func pingStream(s *Stream, msg string) error {
	if _, err := s.Write([]byte(msg)); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(s, buf); err != nil {
		return err
	}
	if string(buf) != msg {
		return errors.New("bad echo")
	}
	return nil
}

// openAndPing opens a stream from m to peer and round-trips a message,
// retrying until ctx ends; it returns the stream.
func openAndPing(ctx context.Context, m *Mesh, peer Hashname) (*Stream, error) {
	var last error
	for ctx.Err() == nil {
		octx, cancel := context.WithTimeout(ctx, 2*time.Second)
		s, err := m.OpenStream(octx, peer, nil)
		if err == nil {
			err = pingStream(s, "hello")
			if err == nil {
				cancel()
				return s, nil
			}
			s.Abort("retry")
		}
		cancel()
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	return nil, last
}

// A watched peer restarts on another port (same identity) and links back
// to the watcher (it is its peer too): the watcher's old stream fails at
// once, and a new one works within a few seconds, over the new path.
func TestRoamPeerRestartsOnAnotherPort(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	ao := nodeOpts()
	ao.Allow = allowAll
	a := newTestMesh(t, "roam-a", ao)
	bo := nodeOpts()
	bo.Allow = allowAll
	b := newTestMesh(t, "roam-b", bo)
	b.Handle(StreamType, echoHandler(ctx))
	a.Handle(StreamType, echoHandler(ctx))
	linkMeshes(t, a, b)
	release, err := a.Keep(b.Hashname())
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	old, err := openAndPing(ctx, a, b.Hashname())
	if err != nil {
		t.Fatal(err)
	}
	// Some keepalives: the old session's at is raised.
	time.Sleep(100 * time.Millisecond)

	b.Close()
	b2 := newTestMesh(t, "roam-b", bo) // another port
	b2.Handle(StreamType, echoHandler(ctx))
	start := time.Now()
	lctx, lcancel := context.WithTimeout(ctx, 10*time.Second)
	_, err = b2.Link(lctx, a.LinkInfo())
	lcancel()
	if err != nil {
		t.Fatalf("the restarted peer cannot link back: %v", err)
	}
	octx, ocancel := context.WithTimeout(ctx, 5*time.Second)
	defer ocancel()
	s, err := openAndPing(octx, a, b2.Hashname())
	if err != nil {
		t.Fatalf("no working stream %v after the move: %v (a's path to b %v, b2 at %v)", time.Since(start), err, a.lookup(b2.Hashname()).path(), b2.Addr())
	}
	took := time.Since(start)
	s.Close()
	if err := pingStream(old, "old"); err == nil {
		t.Fatal("the old stream still works")
	}
	if got := a.lookup(b2.Hashname()).path().udp; got != b2.Addr() {
		t.Fatalf("a's path to b: %v, want %v", got, b2.Addr())
	}
	// b2 reaches a as well.
	if _, err := openAndPing(octx, b2, a.Hashname()); err != nil {
		t.Fatal(err)
	}
	t.Logf("a stream works again %v after the restart", took.Round(time.Millisecond))
}
