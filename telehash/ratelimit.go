package telehash

import (
	"sync"
	"time"
)

// sourceLimiter is a token bucket per source (UDP address or pipe), for handshakes: a
// source gets rate handshakes a second, burst at once. The map of
// buckets is bounded: when it is full, buckets that refilled are
// forgotten (at most once a second), and while it stays full new
// sources share one bucket.
type sourceLimiter struct {
	rate, burst float64
	max         int

	mu        sync.Mutex
	buckets   map[pathAddr]*bucket
	overflow  bucket
	lastSweep time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newSourceLimiter(rate, burst float64, max int) *sourceLimiter {
	return &sourceLimiter{rate: rate, burst: burst, max: max,
		buckets: make(map[pathAddr]*bucket)}
}

// allow takes a token from src's bucket, and reports whether it had one.
func (l *sourceLimiter) allow(src pathAddr, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[src]
	if b == nil {
		if len(l.buckets) >= l.max && now.Sub(l.lastSweep) >= time.Second {
			l.sweep(now)
		}
		if len(l.buckets) >= l.max {
			b = &l.overflow
		} else {
			b = &bucket{tokens: l.burst, last: now}
			l.buckets[src] = b
		}
	}
	return b.take(now, l.rate, l.burst)
}

// refill adds the tokens earned since the last refill.
func (b *bucket) refill(now time.Time, rate, burst float64) {
	if b.last.IsZero() {
		b.tokens, b.last = burst, now
	}
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(burst, b.tokens+d.Seconds()*rate)
		b.last = now
	}
}

// take takes a token if there is one.
func (b *bucket) take(now time.Time, rate, burst float64) bool {
	b.refill(now, rate, burst)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// sweep forgets the buckets that are full again.
func (l *sourceLimiter) sweep(now time.Time) {
	l.lastSweep = now
	for a, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.buckets, a)
		}
	}
}
