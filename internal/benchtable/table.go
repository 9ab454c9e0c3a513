package benchtable

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
)

// Results are the results of every benchmark run, by name.
type Results map[string]Result

// Collect indexes results by name (the last of a name wins).
func Collect(lists ...[]Result) Results {
	rs := Results{}
	for _, l := range lists {
		for _, r := range l {
			rs[r.Name] = r
		}
	}
	return rs
}

// get returns a metric of a benchmark, or, when bench ends in "*", of
// the first benchmark (by name) that starts with bench and reports unit
// (BenchmarkXMPPClone sorts before BenchmarkXMPPPushToFetched).
func (rs Results) get(bench, unit string) (float64, bool) {
	if prefix, ok := strings.CutSuffix(bench, "*"); ok {
		for _, name := range sortedKeys(rs) {
			if v, ok := rs[name].Metrics[unit]; ok && strings.HasPrefix(name, prefix) {
				return v, true
			}
		}
		return 0, false
	}
	v, ok := rs[bench].Metrics[unit]
	return v, ok
}

// has reports whether the benchmark ran (bench may end in "*").
func (rs Results) has(bench string) bool {
	if prefix, ok := strings.CutSuffix(bench, "*"); ok {
		for name := range rs {
			if strings.HasPrefix(name, prefix) {
				return true
			}
		}
		return false
	}
	_, ok := rs[bench]
	return ok
}

// metric names one reported figure and how to show it.
type metric struct {
	bench, unit string
	show        string // "%.1f ms"
}

// row is one line of the table: ours, and what it is compared with
// (empty bench: nothing); ratio is ours/reference unless ratioUnit
// names a reported ratio.
type row struct {
	what       string
	ours, ref  metric
	refName    string
	ratioUnit  string // a reported ratio of ours's benchmark
	invert     bool   // ratio is reference/ours (throughput from times)
	target     string
	section    string // starts a new section with this heading
	missingSay string // shown when ours is missing ("n/a": not run)
}

func ms(bench, unit string) metric  { return metric{bench, unit, "%.1f ms"} }
func sec(bench, unit string) metric { return metric{bench, unit, "%.2f s"} }
func mbps(bench, unit string) metric {
	return metric{bench, unit, "%.1f MB/s"}
}
func pct(bench, unit string) metric   { return metric{bench, unit, "%.3f %%"} }
func count(bench, unit string) metric { return metric{bench, unit, "%.0f"} }

const (
	local  = "BenchmarkLocalPushToChanged"
	ssh    = "BenchmarkSSHPushToFetched"
	th     = "BenchmarkTHPushToFetched"
	xmpp   = "BenchmarkXMPP*"
	many   = "BenchmarkSSHManyRemotes"
	clone  = "BenchmarkCloneAndPush"
	idle   = "BenchmarkIdle"
	flood  = "BenchmarkHandshakeFlood"
	annex  = "git-annex"
	sshRef = "ours, ssh"
)

// BenchmarkXMPPClone's sub-benchmarks: one per bulk path of xmpp::, each
// with ssh:// timed in the same run.
const (
	xmppBS  = "BenchmarkXMPPClone/bytestream"
	xmppMsg = "BenchmarkXMPPClone/messages"
)

var rows = []row{
	{section: "latency: median after `git push` returns", what: "local: push -> CHANGED", ours: ms(local, "ms-median-changed"), target: "< 10 ms"},
	{what: "local: push -> fetched", ours: ms(local, "ms-median-fetched")},
	{what: "ssh: push -> CHANGED", ours: ms(ssh, "ms-median-ours-changed"), ref: ms(ssh, "ms-median-annex-syncing"), refName: annex},
	{what: "ssh: push -> fetched", ours: ms(ssh, "ms-median-ours-fetched"), ref: ms(ssh, "ms-median-annex-done"), refName: annex, target: "<= 0.5 x annex"},
	{what: "ssh, no streams: push -> fetched", ours: ms(ssh, "ms-median-plain-fetched"), ref: ms(ssh, "ms-median-annex-done"), refName: annex},
	{what: "th: push -> CHANGED", ours: ms(th, "ms-median-changed"), ref: ms(ssh, "ms-median-ours-changed"), refName: sshRef},
	{what: "th: push -> fetched", ours: ms(th, "ms-median-fetched"), ref: ms(ssh, "ms-median-ours-fetched"), refName: sshRef},
	{what: "xmpp: push -> CHANGED", ours: ms(xmpp, "ms-median-changed"), ref: ms(ssh, "ms-median-ours-changed"), refName: sshRef, missingSay: "n/a"},
	{what: "xmpp: push -> fetched", ours: ms(xmpp, "ms-median-fetched"), ref: ms(ssh, "ms-median-ours-fetched"), refName: sshRef, missingSay: "n/a"},
	{section: "many ssh remotes on one host, one daemon", what: "remotes", ours: count(many, "remotes")},
	{what: "all CONNECTED after start", ours: sec(many, "s-all-connected"), target: "< 3 s"},
	{what: "processes started: git / ssh / far side", ours: metric{many, "procs-git", "%.0f"}},
	{what: "child CPU until all CONNECTED", ours: sec(many, "s-child-cpu")},
	{what: "burst push -> fetched", ours: ms(many, "ms-median-burst-fetched"), ref: ms(many, "ms-median-isolated-fetched"), refName: "isolated", target: "near 1"},
	{what: "fetches per push in the burst", ours: metric{many, "fetches-per-push", "%.2f"}},
	{section: "throughput (mean of rounds; ratio: ours/reference in MB/s)", what: "clone over th::", ours: mbps(clone, "MBps-clone-th"), ref: mbps(clone, "MBps-clone-ssh"), refName: "ssh://", target: ">= 0.8"},
	{what: "push over th::", ours: mbps(clone, "MBps-push-th"), ref: mbps(clone, "MBps-push-ssh"), refName: "ssh://", target: ">= 0.8"},
	{what: "clone over xmpp::, bytestream", ours: mbps(xmppBS, "MBps-clone-xmpp"), ref: mbps(xmppBS, "MBps-clone-ssh"), refName: "ssh://", target: ">= 0.5", missingSay: "n/a"},
	{what: "push over xmpp::, bytestream", ours: mbps(xmppBS, "MBps-push-xmpp"), ref: mbps(xmppBS, "MBps-push-ssh"), refName: "ssh://", target: ">= 0.5", missingSay: "n/a"},
	{what: "clone over xmpp::, messages", ours: mbps(xmppMsg, "MBps-clone-xmpp"), ref: mbps(xmppMsg, "MBps-clone-ssh"), refName: "ssh://", target: ">= 10 MB/s", missingSay: "n/a"},
	{what: "push over xmpp::, messages", ours: mbps(xmppMsg, "MBps-push-xmpp"), ref: mbps(xmppMsg, "MBps-push-ssh"), refName: "ssh://", target: ">= 10 MB/s", missingSay: "n/a"},
	{what: "clone over file://", ours: mbps(clone, "MBps-clone-file"), ref: mbps(clone, "MBps-clone-ssh"), refName: "ssh://"},
	{what: "push over file://", ours: mbps(clone, "MBps-push-file"), ref: mbps(clone, "MBps-push-ssh"), refName: "ssh://"},
	{what: "CPU per clone over th::", ours: sec(clone, "cpu-s-clone-th"), ref: sec(clone, "cpu-s-clone-ssh"), refName: "ssh://", target: "<= 1.2"},
	{what: "CPU per push over th::", ours: sec(clone, "cpu-s-push-th"), ref: sec(clone, "cpu-s-push-ssh"), refName: "ssh://", target: "<= 1.2"},
	{section: "idle: CPU doing nothing (300 remotes)", what: "daemon, 300 local remotes", ours: pct(idle, "%core-local"), ref: pct(idle, "%core-local-empty"), refName: "no remotes", target: "< 0.1 %"},
	{what: "far side, notify-changes, 300 repos", ours: pct(idle, "%core-notify"), ref: pct(idle, "%core-notify-empty"), refName: "no repos", target: "< 0.1 %"},
	{what: "git runs while idle (local + far side)", ours: count(idle, "git-runs-local"), ref: count(idle, "git-runs-notify"), refName: "far side", target: "0"},
	{section: "th:: under a handshake flood", what: "request latency, one source / none", ours: metric{flood, "x-one", "%.2f x"}, target: "<= 2"},
	{what: "request latency, 64 sources / none", ours: metric{flood, "x-many", "%.2f x"}, target: "<= 2"},
}

// Print writes the summary table of rs.
func Print(w io.Writer, rs Results) error {
	const format = "%-40s %14s %14s %-11s %7s  %s\n"
	var b strings.Builder
	for _, r := range rows {
		if r.section != "" {
			fmt.Fprintf(&b, "\n%s\n", r.section)
			fmt.Fprintf(&b, format, "", "ours", "reference", "(which)", "ratio", "target")
		}
		ours, okOurs := rs.get(r.ours.bench, r.ours.unit)
		oursText := "-"
		switch {
		case okOurs && r.ours.unit == "procs-git":
			g, _ := rs.get(many, "procs-ssh")
			f, _ := rs.get(many, "procs-far")
			oursText = fmt.Sprintf("%.0f / %.0f / %.0f", ours, g, f)
		case okOurs:
			oursText = fmt.Sprintf(r.ours.show, ours)
		case r.missingSay != "" && !rs.has(r.ours.bench):
			oursText = r.missingSay
		}
		refText, ratio := "", ""
		if r.ref.bench != "" {
			refText = "-"
			if ref, ok := rs.get(r.ref.bench, r.ref.unit); ok {
				refText = fmt.Sprintf(r.ref.show, ref)
				// A ratio of times at or below zero (a line seen before
				// `git push` returned) says nothing.
				if okOurs && ours > 0 && ref > 0 && !math.IsInf(ours/ref, 0) {
					ratio = fmt.Sprintf("%.2f", ours/ref)
				}
			}
		}
		fmt.Fprintf(&b, format, r.what, oursText, refText, r.refName, ratio, r.target)
	}
	lines := strings.Split(strings.TrimPrefix(b.String(), "\n"), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	_, err := io.WriteString(w, strings.Join(lines, "\n"))
	return err
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
