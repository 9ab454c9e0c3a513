package backoff

import (
	"context"
	"testing"
	"time"
)

func TestGrowsToMaxAndResets(t *testing.T) {
	b := Backoff{Min: time.Second, Max: 8 * time.Second, StableAfter: time.Minute}
	steps := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second}
	for i, step := range steps {
		d := b.Next()
		if d < step/2 || d >= step {
			t.Fatalf("attempt %d: delay %v outside [%v, %v)", i, d, step/2, step)
		}
	}
	b.Done(time.Second) // short-lived: keeps backing off
	if d := b.Next(); d < 4*time.Second {
		t.Fatalf("after a short success: %v, want the max step", d)
	}
	b.Done(time.Minute)
	if d := b.Next(); d >= time.Second {
		t.Fatalf("after a stable success: %v, want the min step", d)
	}
	b.Next()
	b.Reset()
	if d := b.Next(); d >= time.Second {
		t.Fatalf("after Reset: %v, want the min step", d)
	}
}

func TestSleepHonoursCancellation(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if Sleep(ctx, time.Hour) {
		t.Fatal("Sleep reported a full delay on a cancelled context")
	}
	if time.Since(start) > time.Second {
		t.Fatal("Sleep did not return at once")
	}
	if !Sleep(context.Background(), time.Millisecond) {
		t.Fatal("Sleep of 1ms was cut short")
	}
}
