package benchtable

import (
	"math"
	"strings"
	"testing"
)

const sample = `goos: linux
BenchmarkSSHManyRemotes-2   	       1	 642889946 ns/op	         1.000 fetches-per-push	        39.05 ms-median-burst-fetched	        41.60 ms-median-isolated-fetched	         1.000 procs-far	         5.000 procs-git	         2.000 procs-ssh	         1.165 s-all-connected	1000 remotes
--- BENCH: BenchmarkSSHManyRemotes-2
    bench_many_test.go:250: 250 ssh remotes
BenchmarkSSHManyRemotes-2   	       5	 642889946 ns/op	         0.4 fetches-per-push	        39.05 ms-median-burst-fetched	        41.60 ms-median-isolated-fetched	         1.000 procs-far	         5.000 procs-git	         2.000 procs-ssh	         1.165 s-all-connected	1000 remotes
BenchmarkXMPPPushToFetched-2 3 1 ns/op 7.5 ms-median-changed
PASS
ok  	github.com/git-remote-daemon/git-remote-daemon/internal/e2e	27.558s
`

func TestParse(t *testing.T) {
	res, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 {
		t.Fatalf("%d results: %+v", len(res), res)
	}
	m := res[0]
	if m.Name != "BenchmarkSSHManyRemotes" || m.N != 5 || m.Metrics["fetches-per-push"] != 0.4 || m.Metrics["s-all-connected"] != 1.165 {
		t.Errorf("kept %+v, want the last run's line", m)
	}
	var b strings.Builder
	if err := Print(&b, Collect(res)); err != nil {
		t.Fatal(err)
	}
	table := b.String()
	// Compared by words: the columns' widths are not the point.
	words := map[string]bool{}
	for _, l := range strings.Split(table, "\n") {
		words[strings.Join(strings.Fields(l), " ")] = true
	}
	for _, want := range []string{
		"all CONNECTED after start 1.17 s < 3 s",
		"processes started: git / ssh / far side 5 / 2 / 1",
		"burst push -> fetched 39.0 ms 41.6 ms isolated 0.94 near 1",
		"xmpp: push -> CHANGED 7.5 ms - ours, ssh",
		"xmpp: push -> fetched - - ours, ssh", // ran, without this figure
		"local: push -> CHANGED - < 10 ms",
	} {
		if !words[want] {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	// No XMPP benchmark: n/a.
	b.Reset()
	if err := Print(&b, Collect(res[:1])); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "xmpp: push -> fetched                               n/a") {
		t.Errorf("no n/a for xmpp:\n%s", b.String())
	}
	for _, l := range strings.Split(table, "\n") {
		if strings.HasSuffix(l, " ") {
			t.Errorf("trailing space: %q", l)
		}
	}
}

func TestParseLineRejects(t *testing.T) {
	for _, l := range []string{"", "Benchmark", "BenchmarkX-2", "BenchmarkX-2 x", "BenchmarkX 1 2", "BenchmarkX 1 a b", "Foo 1 2 ms", "BenchmarkX -1 2 ms"} {
		if r, ok := ParseLine(l); ok {
			t.Errorf("ParseLine(%q) = %+v, want no result", l, r)
		}
	}
}

// FuzzParseLine: whatever parses renders back to a line that parses to
// the same result.
func FuzzParseLine(f *testing.F) {
	for _, l := range strings.Split(sample, "\n") {
		f.Add(l)
	}
	f.Add("BenchmarkA-8 1 NaN x +Inf y")
	f.Fuzz(func(t *testing.T, line string) {
		r, ok := ParseLine(line)
		if !ok {
			return
		}
		back, ok := ParseLine(r.String())
		if !ok || back.Name != r.Name || back.N != r.N || len(back.Metrics) != len(r.Metrics) {
			t.Fatalf("%q -> %q -> %+v", line, r.String(), back)
		}
		for k, v := range r.Metrics {
			if w := back.Metrics[k]; w != v && !(math.IsNaN(v) && math.IsNaN(w)) {
				t.Fatalf("%s: %v -> %v", k, v, w)
			}
		}
		var b strings.Builder
		if err := Print(&b, Collect([]Result{r})); err != nil {
			t.Fatal(err)
		}
	})
}
