package telehash

import (
	"bytes"
	"context"
	"encoding/binary"
	"math"
	"testing"
)

// Every datagram I/O path carries streams both ways intact, and meshes on
// different paths interoperate (a batching sender, a plain receiver).
func TestMeshStreamIOModes(t *testing.T) {
	size := 4 << 20
	if testing.Short() || raceEnabled {
		size = 1 << 20
	}
	for _, a := range ioModes {
		for _, b := range ioModes {
			if a.name != b.name && a.name != "gso" && b.name != "gso" {
				continue
			}
			t.Run(a.name+"-"+b.name, func(t *testing.T) {
				ao, bo := fastOpts(), fastOpts()
				a.opts(&ao)
				b.opts(&bo)
				bo.Allow = allowAll
				ma := newTestMesh(t, "iomode-a", ao)
				mb := newTestMesh(t, "iomode-b", bo)
				linkMeshes(t, ma, mb)
				oneWay(t, ma, mb, testData(size, 7))
				ma.Handle(StreamType, nil)
				mb.Handle(StreamType, nil)
				oneWay(t, mb, ma, testData(size/4, 8))
				if _, isPlain := ma.io.(*plainIO); isPlain != (a.name == "plain") {
					t.Fatalf("mesh a uses %T in mode %s", ma.io, a.name)
				}
				t.Logf("a %+v", ma.Stats())
			})
		}
	}
}

// innerOf encodes a stream packet's inner bytes.
func innerOf(t *testing.T, h outHead, body []byte) []byte {
	t.Helper()
	b, err := appendInner(make([]byte, 0, 2048), &h, body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPadInners(t *testing.T) {
	body := bytes.Repeat([]byte("x"), 1200)
	small := bytes.Repeat([]byte("y"), 100)
	heads := []outHead{
		{c: 1, seq: 9, frag: true},
		{c: 1, seq: 10, ack: 3, miss: []uint32{1024}, frag: true},
		{c: 1, seq: 11, frag: true},
		{c: 1, seq: 12, ack: 7, miss: []uint32{2, 5, 1000}, frag: true},
		{c: 1, seq: 13},
	}
	var inners, want [][]byte
	for i, h := range heads {
		b := body
		if i == len(heads)-1 {
			b = small
		}
		inners = append(inners, innerOf(t, h, b))
		want = append(want, innerOf(t, h, b))
	}
	padInners(inners)
	for i := 1; i < 4; i++ {
		if len(inners[i]) != len(inners[0]) {
			t.Fatalf("inner %d: %d bytes, want %d as inner 0", i, len(inners[i]), len(inners[0]))
		}
	}
	if len(inners[4]) != len(want[4]) {
		t.Fatalf("the short last inner was padded: %d bytes, was %d", len(inners[4]), len(want[4]))
	}
	for i := range inners {
		got, err := DecodeChannelInner(inners[i])
		if err != nil {
			t.Fatalf("inner %d: %v", i, err)
		}
		orig, _ := DecodeChannelInner(want[i])
		if got.C != orig.C || got.Seq != orig.Seq || got.Ack != orig.Ack || len(got.Miss) != len(orig.Miss) ||
			!bytes.Equal(got.Body, orig.Body) || len(got.Extra) != len(orig.Extra) {
			t.Fatalf("inner %d decodes to %+v, want %+v", i, got, orig)
		}
		fast, err := decodeInner(inners[i])
		if err != nil || fast.seq != orig.Seq || !bytes.Equal(fast.body, orig.Body) {
			t.Fatalf("inner %d: fast decoder: %+v %v", i, fast, err)
		}
		hl := int(binary.BigEndian.Uint16(inners[i]))
		if head := inners[i][2 : 2+hl]; head[len(head)-1] != '}' {
			t.Fatalf("inner %d: head %q", i, head)
		}
	}
	// Not a JSON head: left alone.
	raw := []byte{0, 0, 1, 2, 3}
	if b, ok := padInner(raw, 4); ok || !bytes.Equal(b, raw) {
		t.Fatalf("padInner of a headless packet: %v %q", ok, b)
	}
}

// The longest stream packet (largest channel id and seq, a full chunk, the
// largest piggybacked ack) fits MaxDatagramSize.
func TestStreamChunkFits(t *testing.T) {
	c := newChannel(barePeer(t, 64), math.MaxUint32, StreamType, true, true, nil)
	t.Cleanup(func() { c.fail(ErrChannelClosed, "") })
	c.snd.next, c.snd.acked = math.MaxUint32-3, math.MaxUint32-4
	n, err := c.sendStream(context.Background(), make([]byte, 2*StreamChunk))
	if err != nil || n != 2*StreamChunk {
		t.Fatalf("sendStream: %d bytes, %v", n, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rcv.any, c.rcv.inDone = true, math.MaxUint32-2000
	for _, op := range c.snd.q {
		if in := c.innerLocked(op); len(in) > maxInnerSize || len(in)+channelOverhead > MaxDatagramSize {
			t.Fatalf("seq %d: inner of %d bytes, more than %d", op.h.seq, len(in), maxInnerSize)
		}
	}
}
