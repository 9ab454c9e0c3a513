package xmpppipe

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

func TestFramesRoundTrip(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	fa := newFramed(a, true)
	defer fa.close()
	msgs := [][]byte{[]byte("x"), bytes.Repeat([]byte{7}, 1400), bytes.Repeat([]byte{9}, maxFrame)}
	go func() {
		for _, m := range msgs {
			fa.send(m)
		}
		fa.send(nil) // padding is skipped
		fa.send([]byte("last"))
	}()
	var got [][]byte
	frames := 0
	errc := make(chan error, 1)
	go func() {
		errc <- readFrames(b, func() { frames++ }, func(p []byte) {
			got = append(got, bytes.Clone(p))
			if len(got) == len(msgs)+1 {
				b.Close()
			}
		})
	}()
	select {
	case <-errc:
	case <-time.After(5 * time.Second):
		t.Fatal("frames not read")
	}
	if len(got) != len(msgs)+1 || !bytes.Equal(got[2], msgs[2]) || string(got[3]) != "last" {
		t.Fatalf("got %d frames", len(got))
	}
	if frames < len(msgs)+2 {
		t.Fatalf("padding frame not seen (%d frames)", frames)
	}
	if err := fa.send(make([]byte, maxFrame+1)); err == nil {
		t.Fatal("oversized frame sent")
	}
}

func TestFramesTruncated(t *testing.T) {
	in := appendFrame(nil, []byte("hello"))
	err := readFrames(bytes.NewReader(in[:4]), func() {}, func([]byte) {})
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated frame: %v", err)
	}
}

func FuzzReadFrames(f *testing.F) {
	f.Add(appendFrame(appendFrame(nil, []byte("abc")), nil))
	f.Add([]byte{0xff, 0xff, 1})
	f.Add([]byte{0})
	f.Fuzz(func(t *testing.T, in []byte) {
		var out []byte
		_ = readFrames(bytes.NewReader(in), func() {}, func(p []byte) {
			if len(p) == 0 || len(p) > maxFrame {
				t.Fatalf("delivered %d bytes", len(p))
			}
			out = appendFrame(out, p)
		})
		// What was delivered re-encodes to a prefix of the input with
		// padding frames removed.
		var again []byte
		_ = readFrames(bytes.NewReader(out), func() {}, func(p []byte) { again = appendFrame(again, p) })
		if !bytes.Equal(out, again) {
			t.Fatal("frames do not round-trip")
		}
	})
}
