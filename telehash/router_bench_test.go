package telehash

import (
	"testing"
	"time"
)

// BenchmarkRelayThroughput moves a stream both ways between two meshes,
// directly and through a router's relay (direct traffic blocked), and
// reports both rates and their ratio.
func BenchmarkRelayThroughput(b *testing.B) {
	const size = 4 << 20
	direct := newRoutedWorld(b, "bench-direct", nil, false)
	direct.link(b)
	waitFor(b, "direct paths", func() bool {
		ab, ba := direct.paths()
		return !ab.isPipe() && !ba.isPipe()
	})
	relay := newRoutedWorld(b, "bench-relay", nil, true)
	relay.link(b)
	var dt, rt time.Duration
	b.ResetTimer()
	for range b.N {
		dt += runStreamPair(b, direct.a, direct.b, size)
		rt += runStreamPair(b, relay.a, relay.b, size)
	}
	b.StopTimer()
	mb := float64(2*size*b.N) / 1e6
	dr, rr := mb/dt.Seconds(), mb/rt.Seconds()
	b.ReportMetric(dr, "direct-MB/s")
	b.ReportMetric(rr, "relay-MB/s")
	b.ReportMetric(rr/dr, "relay/direct")
	if ab, _ := relay.paths(); !ab.isPipe() {
		b.Fatalf("relay world's path is %v", ab)
	}
	b.Logf("direct %.1f MB/s, relay %.1f MB/s, ratio %.2f; router %+v", dr, rr, rr/dr, relay.r.Stats().RoutingStats)
}
