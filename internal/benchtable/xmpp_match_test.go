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

// BenchmarkXMPPClone's sub-benchmarks (one per bulk path) fill the
// xmpp:: throughput rows, each against the ssh:// of its own run; not
// run, they say n/a.
func TestXMPPThroughputRows(t *testing.T) {
	const out = `BenchmarkXMPPClone/bytestream-2 3 1 ns/op 10.0 MBps-clone-ssh 5.0 MBps-clone-xmpp 8.0 MBps-push-ssh 6.0 MBps-push-xmpp
BenchmarkXMPPClone/messages-2 3 1 ns/op 12.0 MBps-clone-ssh 1.5 MBps-clone-xmpp 9.0 MBps-push-ssh 1.8 MBps-push-xmpp
`
	res, err := Parse(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	words := func(rs Results) map[string]bool {
		var b strings.Builder
		if err := Print(&b, rs); err != nil {
			t.Fatal(err)
		}
		w := map[string]bool{}
		for _, l := range strings.Split(b.String(), "\n") {
			w[strings.Join(strings.Fields(l), " ")] = true
		}
		return w
	}
	got := words(Collect(res))
	for _, want := range []string{
		"clone over xmpp::, bytestream 5.0 MB/s 10.0 MB/s ssh:// 0.50 >= 0.5",
		"push over xmpp::, bytestream 6.0 MB/s 8.0 MB/s ssh:// 0.75 >= 0.5",
		"clone over xmpp::, messages 1.5 MB/s 12.0 MB/s ssh:// 0.12 >= 10 MB/s",
		"push over xmpp::, messages 1.8 MB/s 9.0 MB/s ssh:// 0.20 >= 10 MB/s",
	} {
		if !got[want] {
			t.Errorf("table lacks %q", want)
		}
	}
	none := words(Collect(nil))
	if !none["clone over xmpp::, messages n/a - ssh:// >= 10 MB/s"] {
		t.Errorf("no n/a row for xmpp:: throughput without its benchmark: %v", none)
	}
}
