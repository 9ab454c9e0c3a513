package benchtable

import (
	"strings"
	"testing"
)

// The xmpp rows read BenchmarkXMPP*: with BenchmarkXMPPClone (which
// sorts first and has no latency) in the same run, they still show
// BenchmarkXMPPPushToFetched's figures.
func TestXMPPRowsSkipOtherXMPPBenchmarks(t *testing.T) {
	const out = `BenchmarkXMPPClone-2 1 1 ns/op 2.5 s-clone-xmpp 4.0 MBps-clone-xmpp
BenchmarkXMPPPushToFetched-2 5 1 ns/op 12.5 ms-median-changed 40.25 ms-median-fetched
`
	res, err := Parse(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	rs := Collect(res)
	for unit, want := range map[string]float64{"ms-median-changed": 12.5, "ms-median-fetched": 40.25} {
		if v, ok := rs.get(xmpp, unit); !ok || v != want {
			t.Errorf("get(%s, %s) = %v, %v; want %v", xmpp, unit, v, ok, want)
		}
	}
	var b strings.Builder
	if err := Print(&b, rs); err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(b.String(), "\n") {
		if strings.HasPrefix(l, "xmpp: push -> fetched") && !strings.Contains(l, "40.2 ms") && !strings.Contains(l, "40.3 ms") {
			t.Errorf("xmpp fetched row without its figure: %q", l)
		}
	}
}
