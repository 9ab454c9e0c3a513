package telehash

import (
	"context"
	"testing"
	"time"
)

// FuzzMeshReceive feeds arbitrary datagrams to a mesh's receive path, and
// arbitrary inner packets sealed with a linked peer's session (so they
// reach channel dispatch and the reliable state machine). Nothing may
// panic, and the link must keep working.
func FuzzMeshReceive(f *testing.F) {
	f.Add([]byte{0, 0, 1, 2, 3}, []byte(nil))
	f.Add([]byte(nil), []byte("\x00\x1c{\"c\":2,\"type\":\"f\",\"seq\":1}"))
	f.Add([]byte(nil), []byte("\x00\x16{\"c\":2,\"seq\":3,\"ack\":1}"))
	f.Add([]byte(nil), []byte("\x00\x1f{\"c\":4,\"type\":\"nope\",\"end\":true}body"))
	f.Add([]byte(nil), []byte("\x00\x17{\"c\":2,\"miss\":[1,2,99]}"))
	a := newTestMesh(f, "fuzz-a", fastOpts())
	bo := fastOpts()
	bo.Allow = allowAll
	b := newTestMesh(f, "fuzz-b", bo)
	linkMeshes(f, a, b)
	// The link is idle but for the fuzzed packets: keep it, or it is let go.
	release, err := a.Keep(b.Hashname())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(release)
	b.Handle("f", func(c *Channel) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		c.Receive(ctx)
		c.Abort("done")
	})
	pa := a.lookup(b.Hashname())
	from := a.Addr()
	f.Fuzz(func(t *testing.T, raw, inner []byte) {
		if len(raw) > 0 {
			b.receive(append([]byte(nil), raw...), from)
		}
		if len(inner) > 0 && len(inner) <= maxInnerSize {
			d, err := pa.x.sealChannelDatagram(a.opts.Rand, inner)
			if err != nil {
				t.Fatal(err)
			}
			b.receive(d, from)
		}
	})
	if !b.Up(a.Hashname()) {
		f.Fatal("link down after fuzzing")
	}
}
