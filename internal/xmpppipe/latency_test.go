package xmpppipe

import (
	"context"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/telehash"
)

// BenchmarkXMPPRoundTrip measures request/response turns on a telehash
// stream between two meshes whose only path is a Prosody on loopback (a
// fetch is a few such turns): 100 bytes one way, 100 back, and reports
// the median and p90 turn (ms-median-turn, ms-p90-turn).
func BenchmarkXMPPRoundTrip(b *testing.B) {
	for _, bs := range []bool{false, true} {
		name := "messages"
		if bs {
			name = "bytestream"
		}
		b.Run(name, func(b *testing.B) {
			a, m := pair(b, bs)
			m.Handle(telehash.StreamType, func(c *telehash.Channel) {
				s, err := telehash.NewStream(context.Background(), c)
				if err != nil {
					return
				}
				defer s.Close()
				buf := make([]byte, 100)
				for {
					if _, err := io.ReadFull(s, buf); err != nil {
						return
					}
					if _, err := s.Write(buf); err != nil {
						return
					}
				}
			})
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			s, err := a.OpenStream(ctx, m.Hashname(), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			buf := make([]byte, 100)
			turns := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				if _, err := s.Write(buf); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(s, buf); err != nil {
					b.Fatal(err)
				}
				turns = append(turns, time.Since(start))
				// A fetch's turns are apart: the peer's git works between.
				time.Sleep(2 * time.Millisecond)
			}
			b.StopTimer()
			slices.Sort(turns)
			ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
			b.ReportMetric(ms(turns[len(turns)/2]), "ms-median-turn")
			b.ReportMetric(ms(turns[len(turns)*9/10]), "ms-p90-turn")
		})
	}
}
