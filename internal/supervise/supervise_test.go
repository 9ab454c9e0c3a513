package supervise

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestRestartsAFailingServiceAndStopsOnCancel(t *testing.T) {
	s := New(Options{Min: time.Millisecond, Max: 2 * time.Millisecond})
	var runs atomic.Int32
	s.Add("flaky", Func(func(ctx context.Context) error {
		if runs.Add(1) < 3 {
			return errors.New("boom")
		}
		<-ctx.Done()
		return nil
	}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Serve(ctx); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for runs.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if runs.Load() != 3 {
		t.Fatalf("runs = %d, want 3 (two failures restarted)", runs.Load())
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
}

func TestPanicIsRestartedAndOthersGoOn(t *testing.T) {
	s := New(Options{Min: time.Millisecond, Max: time.Millisecond})
	var panics, steady atomic.Int32
	s.Add("panicky", Func(func(ctx context.Context) error {
		if panics.Add(1) == 1 {
			panic("bug")
		}
		<-ctx.Done()
		return nil
	}))
	s.Add("steady", Func(func(ctx context.Context) error {
		steady.Add(1)
		<-ctx.Done()
		return nil
	}))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Serve(ctx)
	deadline := time.Now().Add(5 * time.Second)
	for (panics.Load() < 2 || steady.Load() < 1) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if panics.Load() != 2 || steady.Load() != 1 {
		t.Fatalf("panicky ran %d times (want 2), steady %d (want 1)", panics.Load(), steady.Load())
	}
}

func TestRemoveWaitsAndAddReplaces(t *testing.T) {
	s := New(Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Serve(ctx)
	var stopped atomic.Bool
	started := make(chan struct{})
	s.Add("a", Func(func(ctx context.Context) error {
		close(started)
		<-ctx.Done()
		time.Sleep(10 * time.Millisecond) // slow to stop
		stopped.Store(true)
		return nil
	}))
	<-started
	s.Remove("a")
	if !stopped.Load() {
		t.Fatal("Remove returned before the service stopped")
	}
	second := make(chan struct{})
	s.Add("a", Func(func(ctx context.Context) error { close(second); <-ctx.Done(); return nil }))
	select {
	case <-second:
	case <-time.After(5 * time.Second):
		t.Fatal("a re-added service did not start")
	}
	s.Remove("nothing") // no-op
}

func TestDoneServiceIsNotRestarted(t *testing.T) {
	s := New(Options{Min: time.Millisecond})
	var runs atomic.Int32
	s.Add("once", Func(func(context.Context) error { runs.Add(1); return nil }))
	ctx, cancel := context.WithCancel(context.Background())
	go s.Serve(ctx)
	time.Sleep(50 * time.Millisecond)
	cancel()
	if runs.Load() != 1 {
		t.Fatalf("runs = %d, want 1", runs.Load())
	}
}
