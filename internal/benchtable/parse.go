// Package benchtable reads the output of `go test -bench` (the metrics
// each benchmark reported) and prints the one summary table of
// scripts/bench: latencies, throughput and idle cost, ours beside the
// reference (git-annex, ssh, file://) with their ratios.
package benchtable

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Result is one benchmark line: its name (without the -GOMAXPROCS
// suffix), iterations and metrics by unit.
type Result struct {
	Name    string
	N       int
	Metrics map[string]float64
}

// MaxLine bounds a line of go test output read by Parse.
const MaxLine = 1 << 20

// Parse reads go test output and returns every benchmark result line in
// it; other lines (logs, PASS, ok) are skipped. A benchmark that ran
// several times (the framework's probe with b.N = 1, then the real run)
// is kept as its last line.
func Parse(r io.Reader) ([]Result, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), MaxLine)
	var out []Result
	at := map[string]int{}
	for sc.Scan() {
		res, ok := ParseLine(sc.Text())
		if !ok {
			continue
		}
		if i, seen := at[res.Name]; seen {
			out[i] = res
			continue
		}
		at[res.Name] = len(out)
		out = append(out, res)
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("reading benchmark output: %w", err)
	}
	return out, nil
}

// ParseLine parses one result line: "BenchmarkX-2 <tab> N <tab> v unit
// <tab> v unit...". ok is false for anything else.
func ParseLine(line string) (Result, bool) {
	f := strings.Fields(line)
	if len(f) < 2 || !strings.HasPrefix(f[0], "Benchmark") || len(f)%2 != 0 {
		return Result{}, false
	}
	n, err := strconv.Atoi(f[1])
	if err != nil || n < 0 {
		return Result{}, false
	}
	name := f[0]
	if i := cpuSuffix(name); i >= 0 {
		name = name[:i]
	}
	res := Result{Name: name, N: n, Metrics: map[string]float64{}}
	for i := 2; i+1 < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return Result{}, false
		}
		res.Metrics[f[i+1]] = v
	}
	return res, true
}

// cpuSuffix is where the "-<GOMAXPROCS>" suffix go test adds to a
// benchmark's name starts, or -1.
func cpuSuffix(name string) int {
	if i := strings.LastIndexByte(name, '-'); i > len("Benchmark") {
		if _, err := strconv.Atoi(name[i+1:]); err == nil {
			return i
		}
	}
	return -1
}

// String renders r as go test prints it (single spaces; the suffix is
// gone, unless the name itself ends like one: then "-1" is added, as go
// test prints it with one CPU): ParseLine reads it back.
func (r Result) String() string {
	var b strings.Builder
	name := r.Name
	if cpuSuffix(name) >= 0 {
		name += "-1"
	}
	fmt.Fprintf(&b, "%s %d", name, r.N)
	for _, unit := range sortedKeys(r.Metrics) {
		fmt.Fprintf(&b, " %s %s", strconv.FormatFloat(r.Metrics[unit], 'g', -1, 64), unit)
	}
	return b.String()
}
