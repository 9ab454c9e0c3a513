package notify

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"
)

// A far side that sent its banner and then nothing (a stalled server):
// Keepalive gives up on it with ErrNoAnswer, having pinged.
func TestKeepaliveGivesUpOnSilence(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, w := io.Pipe()
	pr, pw := io.Pipe()
	go func() { _, _ = w.Write([]byte(Banner + "\n")) }() // then silent
	pings := make(chan struct{}, 16)
	go func() {
		buf := make([]byte, 256)
		for {
			n, err := pr.Read(buf)
			if err != nil {
				return
			}
			if n > 0 {
				select {
				case pings <- struct{}{}:
				default:
				}
			}
		}
	}()
	c, err := NewClient(ctx, r, pw)
	if err != nil {
		t.Fatal(err)
	}
	err = c.Keepalive(ctx, 10*time.Millisecond, 100*time.Millisecond)
	if !errors.Is(err, ErrNoAnswer) {
		t.Fatalf("Keepalive = %v, want ErrNoAnswer", err)
	}
	select {
	case <-pings:
	default:
		t.Fatal("no PING was sent")
	}
	w.Close()
	pw.Close()
}

// Keepalive ends with nil when its context ends, and with the stream's
// error when the stream ends.
func TestKeepaliveEnds(t *testing.T) {
	r, w := io.Pipe()
	go func() { _, _ = w.Write([]byte(Banner + "\n")) }()
	c, err := NewClient(context.Background(), r, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Keepalive(ctx, time.Hour, time.Hour); err != nil {
		t.Fatalf("Keepalive on a cancelled context = %v, want nil", err)
	}
	w.CloseWithError(errors.New("cut"))
	if err := c.Keepalive(context.Background(), time.Hour, time.Hour); err == nil {
		t.Fatal("Keepalive on an ended stream = nil, want its error")
	}
}
