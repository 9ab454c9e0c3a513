package e2e

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/git-remote-daemon/git-remote-daemon/protocol"
)

// verbs are the messages a daemon emits, in the order totals reports them.
var verbs = []string{"CONNECTED", "DISCONNECTED", "CHANGED", "STATUS", "ERROR", "PAIRCODE", "PAIRED"}

// tally names what a totals figure counts: the lines of one verb, for one
// remote or (remote "") for all of them.
type tally struct{ verb, remote string }

func (t tally) String() string {
	if t.remote == "" {
		return t.verb
	}
	return t.verb + ":" + t.remote
}

// bound is an inclusive range of line counts.
type bound struct{ min, max int }

func (b bound) String() string {
	if b.min == b.max {
		return strconv.Itoa(b.min)
	}
	return fmt.Sprintf("%d..%d", b.min, b.max)
}

// parseTotals reads the arguments of `daemon totals`: VERB=N, VERB=N..M,
// VERB:REMOTE=N or VERB:REMOTE=N..M (REMOTE may be *, the daemon itself).
func parseTotals(args []string) (map[tally]bound, error) {
	want := map[tally]bound{}
	for _, a := range args {
		key, num, ok := strings.Cut(a, "=")
		if !ok {
			return nil, fmt.Errorf("%q: want VERB=N or VERB:REMOTE=N", a)
		}
		verb, remote, hasRemote := strings.Cut(key, ":")
		if !slices.Contains(verbs, verb) {
			return nil, fmt.Errorf("%q: verb %q is not one of %s", a, verb, strings.Join(verbs, ", "))
		}
		if hasRemote && remote == "" {
			return nil, fmt.Errorf("%q: empty remote name", a)
		}
		b, err := parseBound(num)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", a, err)
		}
		t := tally{verb, remote}
		if _, dup := want[t]; dup {
			return nil, fmt.Errorf("%q: %s named twice", a, t)
		}
		want[t] = b
	}
	return want, nil
}

// parseBound reads N or N..M.
func parseBound(s string) (bound, error) {
	first, last, isRange := strings.Cut(s, "..")
	lo, err := strconv.Atoi(first)
	if err != nil || lo < 0 {
		return bound{}, fmt.Errorf("bad count %q", s)
	}
	if !isRange {
		return bound{lo, lo}, nil
	}
	hi, err := strconv.Atoi(last)
	if err != nil || hi <= lo {
		return bound{}, fmt.Errorf("bad range %q (want N..M with N < M)", s)
	}
	return bound{lo, hi}, nil
}

// checkTotals compares a daemon's output lines with the figures wanted
// and returns one complaint per figure that is off, nil if all hold.
//
//   - VERB=N: N lines of that verb in all.
//   - VERB:REMOTE=N: N lines of that verb about that remote.
//   - A verb named only with remotes: the remotes named are all it may
//     have lines for.
//   - A verb not named at all: no lines.
//
// A line that is not a message the daemon emits is always a complaint.
func checkTotals(lines []string, want map[tally]bound) []string {
	var bad []string
	got := map[tally]int{}
	for i, l := range lines {
		m, err := protocol.Parse(l)
		if err == nil && !slices.Contains(verbs, m.Verb()) {
			err = errors.New("not a message the daemon emits")
		}
		if err != nil {
			bad = append(bad, fmt.Sprintf("line %d %q: %v", i+1, l, err))
			continue
		}
		got[tally{m.Verb(), ""}]++
		got[tally{m.Verb(), remoteOf(m)}]++
	}
	for _, verb := range verbs {
		all, named := want[tally{verb, ""}]
		var remotes []string // the remotes named for this verb
		for t := range want {
			if t.verb == verb && t.remote != "" {
				remotes = append(remotes, t.remote)
			}
		}
		slices.Sort(remotes)
		if named || len(remotes) == 0 {
			t := tally{verb, ""}
			if n := got[t]; n < all.min || n > all.max {
				bad = append(bad, fmt.Sprintf("%d %s lines, want %s", n, verb, all))
			}
		}
		for _, r := range remotes {
			t := tally{verb, r}
			if n, b := got[t], want[t]; n < b.min || n > b.max {
				bad = append(bad, fmt.Sprintf("%d %s lines for %s, want %s", n, verb, r, b))
			}
		}
		if named || len(remotes) == 0 {
			continue
		}
		var others []string // remotes with lines of this verb that were not named
		for t, n := range got {
			if t.verb == verb && t.remote != "" && !slices.Contains(remotes, t.remote) {
				others = append(others, fmt.Sprintf("%d %s lines for %s, want 0 (not named)", n, verb, t.remote))
			}
		}
		slices.Sort(others)
		bad = append(bad, others...)
	}
	return bad
}

// remoteOf is the remote a daemon message is about.
func remoteOf(m protocol.Message) string {
	switch m := m.(type) {
	case protocol.Connected:
		return m.Remote
	case protocol.Disconnected:
		return m.Remote
	case protocol.Changed:
		return m.Remote
	case protocol.Status:
		return m.Remote
	case protocol.Error:
		return m.Remote
	case protocol.Paired:
		return m.Remote
	case protocol.PairCode:
		return protocol.Daemon
	}
	return ""
}

// logLines picks the protocol lines out of a background daemon's log
// (slog text records "msg=VERB line=\"VERB ...\""), in order.
func logLines(log string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		_, msg, ok := strings.Cut(l, " msg=")
		if !ok {
			continue
		}
		verb, _, _ := strings.Cut(msg, " ")
		if !slices.Contains(verbs, verb) {
			continue
		}
		_, attr, ok := strings.Cut(msg, " line=")
		if !ok {
			out = append(out, l) // not a protocol line: checkTotals complains
			continue
		}
		line, _, _ := strings.Cut(attr, " ")
		if q, err := strconv.QuotedPrefix(attr); err == nil {
			line, _ = strconv.Unquote(q)
		}
		out = append(out, line)
	}
	return out
}

// cmdLogTotals is totals for a background daemon, from its log (a file,
// or stderr: the last command's, e.g. wait for a --no-detach daemon):
//
//	logtotals FILE VERB=N ...
func cmdLogTotals(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 1 {
		ts.Fatalf("usage: logtotals FILE|stderr VERB=N|VERB:REMOTE=N ... (no negation)")
	}
	want, err := parseTotals(args[1:])
	if err != nil {
		ts.Fatalf("usage: logtotals FILE VERB=N|VERB:REMOTE=N ...: %v", err)
	}
	lines := logLines(ts.ReadFile(args[0]))
	if bad := checkTotals(lines, want); len(bad) > 0 {
		var b strings.Builder
		for i, l := range lines {
			fmt.Fprintf(&b, "%4d %s\n", i+1, l)
		}
		ts.Fatalf("logtotals %s:\n\t%s\nall %d lines:\n%s", args[0], strings.Join(bad, "\n\t"), len(lines), b.String())
	}
}

// TestTotals checks `daemon totals` itself: a duplicate or spurious line,
// a line for a remote not named, or a non-message line fails it.
func TestTotals(t *testing.T) {
	sha := strings.Repeat("a", 40)
	lines := []string{
		"CONNECTED origin",
		"CONNECTED other",
		"CHANGED origin " + sha,
		"STATUS origin fetched",
		"ERROR * line 1: malformed message: empty line",
		"DISCONNECTED other",
		"CONNECTED other",
	}
	for _, c := range []struct {
		args string
		bad  int // complaints wanted
	}{
		{"CONNECTED=3 DISCONNECTED=1 CHANGED=1 STATUS=1 ERROR=1", 0},
		{"CONNECTED:origin=1 CONNECTED:other=2 DISCONNECTED:other=1 CHANGED:origin=1 STATUS:origin=1 ERROR:*=1", 0},
		{"CONNECTED=3 CONNECTED:other=1..2 DISCONNECTED=0..1 CHANGED=1 STATUS=1 ERROR=1", 0},
		{"CONNECTED=2 DISCONNECTED=1 CHANGED=1 STATUS=1 ERROR=1", 1},        // one CONNECTED too many
		{"CONNECTED=3 DISCONNECTED=1 CHANGED=1 STATUS=1", 1},                // ERROR not named: must be 0
		{"CONNECTED=3 DISCONNECTED=1 CHANGED=1 STATUS=1 ERROR=2..3", 1},     // below the range
		{"CONNECTED:origin=1 DISCONNECTED=1 CHANGED=1 STATUS=1 ERROR=1", 1}, // other not named
		{"CONNECTED:other=1 CONNECTED=3 DISCONNECTED=1 CHANGED=1 STATUS=1 ERROR=1", 1},
		{"", 5},
	} {
		want, err := parseTotals(strings.Fields(c.args))
		if err != nil {
			t.Fatalf("%s: %v", c.args, err)
		}
		if bad := checkTotals(lines, want); len(bad) != c.bad {
			t.Errorf("%s: %d complaints %q, want %d", c.args, len(bad), bad, c.bad)
		}
	}

	want, err := parseTotals([]string{"CONNECTED=1"})
	if err != nil {
		t.Fatal(err)
	}
	if bad := checkTotals([]string{"CONNECTED origin", "PUSH origin"}, want); len(bad) != 1 || !strings.Contains(bad[0], "line 2") {
		t.Errorf("a command in the output: complaints %q, want one about line 2", bad)
	}

	for _, args := range []string{"CONNECTED", "FOO=1", "CONNECTED=x", "CONNECTED=-1", "CONNECTED=2..1",
		"CONNECTED=1..1", "CONNECTED:=1", "CONNECTED=1 CONNECTED=2", "ERROR:*=1 ERROR:*=1"} {
		if _, err := parseTotals(strings.Fields(args)); err == nil {
			t.Errorf("%q parsed", args)
		}
	}
}

func TestLogLines(t *testing.T) {
	log := `time=2026-12-02T02:04:47.634Z level=INFO msg=started version=0.1.0 pid=17843 repo=/w/clone
time=2026-12-02T02:04:47.643Z level=INFO msg=CONNECTED line="CONNECTED origin"
time=2026-12-02T02:04:47.729Z level=INFO msg=STATUS line="STATUS origin fetched"
time=2026-12-02T02:04:47.730Z level=ERROR msg=ERROR line="ERROR origin say \"hi\""
time=2026-12-02T02:04:47.731Z level=ERROR msg=ERROR err=x
time=2026-12-02T02:04:48.022Z level=INFO msg=stopped
`
	got := logLines(log)
	want := []string{"CONNECTED origin", "STATUS origin fetched", `ERROR origin say "hi"`,
		"time=2026-12-02T02:04:47.731Z level=ERROR msg=ERROR err=x"}
	if !slices.Equal(got, want) {
		t.Errorf("logLines = %q, want %q", got, want)
	}
}
