// Package backoff is the one retry delay of the program: exponential from
// a minimum to a maximum, with jitter so that many daemons (or remotes)
// do not retry in step, reset after a success that lasted.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff yields growing delays. The zero value is not usable: set Min
// and Max (Max >= Min > 0).
type Backoff struct {
	Min, Max time.Duration
	// StableAfter: a success that lasted at least this long resets the
	// delay (see Done). Zero means every Done resets.
	StableAfter time.Duration

	cur time.Duration
}

// Next returns the delay to wait before the next attempt, spread over
// [d/2, d) for the current step d, and doubles the step up to Max.
func (b *Backoff) Next() time.Duration {
	if b.cur < b.Min {
		b.cur = b.Min
	}
	d := Jitter(b.cur)
	b.cur = min(2*b.cur, b.Max)
	return d
}

// Reset makes the next delay the minimum again (RESUME, RELOAD, a kick).
func (b *Backoff) Reset() { b.cur = 0 }

// Done records an attempt that had succeeded for up: a success that
// lasted StableAfter resets the delay; a short-lived one does not, so a
// connection that drops at once keeps backing off.
func (b *Backoff) Done(up time.Duration) {
	if up >= b.StableAfter {
		b.Reset()
	}
}

// Jitter spreads d over [d/2, d).
func Jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2)
}

// Sleep waits d or until ctx ends; it reports whether the full delay
// passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
