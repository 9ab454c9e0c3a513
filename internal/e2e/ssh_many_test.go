package e2e

import (
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// manyTestRemotes is more than the 256 watches one notify-changes
// stream used to hold: past them remotes were refused ("too many
// watches") unless the far side took them all.
const manyTestRemotes = 300

// TestSSHManyRemotes: one daemon with 300 ssh remotes on one host (each a
// repository of its own) connects them all through one ssh master and
// one far-side notify-changes, deriving their state without a process
// per remote; fetches of different remotes run side by side, at most 4
// at once; and a burst of pushes to one remote makes few fetches, the
// last with every change.
func TestSSHManyRemotes(t *testing.T) {
	grd, err := exec.LookPath("git-remote-daemon")
	if err != nil {
		t.Fatal(err)
	}
	// Each fetch logs its start and end (ns) and takes 0.4 s longer, so
	// that fetches of different remotes would overlap if nothing bounded
	// them.
	hook := `echo "start $$ $(date +%s%N)" >>"$FETCH_LOG"; sleep 0.4; "$REAL_GIT" "$@"; rc=$?; echo "end $$ $(date +%s%N)" >>"$FETCH_LOG"; exit $rc`
	m := setupMany(t, grd, manyTestRemotes, 12, hook, "")
	realGit, _ := exec.LookPath("git")
	fetchLog := m.logs + "/fetches"
	env := append(m.env, "FETCH_LOG="+fetchLog, "REAL_GIT="+realGit)

	d := startTimed(t, grd, m.clone, env, "--foreground")
	connected := 0
	deadline := time.After(2 * time.Minute)
	for connected < manyTestRemotes {
		select {
		case l, ok := <-d.lines:
			if !ok {
				t.Fatalf("the daemon exited after %d CONNECTED", connected)
			}
			switch {
			case strings.HasPrefix(l.text, "CONNECTED "):
				connected++
			case strings.HasPrefix(l.text, "ERROR "), strings.HasPrefix(l.text, "CHANGED "):
				t.Errorf("daemon: %s", l.text)
			}
		case <-deadline:
			t.Fatalf("%d of %d remotes CONNECTED within 2 min", connected, manyTestRemotes)
		}
	}
	if far := readPids(m.farLog); len(far) != 1 {
		t.Errorf("%d far-side notify-changes processes, want 1", len(far))
	}
	masters, sessions := 0, 0
	for _, r := range m.runs("ssh") {
		if strings.Contains(r, " -M ") {
			masters++
		} else {
			sessions++
		}
	}
	if masters != 1 || sessions != 1 {
		t.Errorf("ssh ran as %d masters and %d other sessions, want 1 and 1 (runs: %q)", masters, sessions, m.runs("ssh"))
	}
	// git ran only for the daemon's own start (configuration,
	// repository), not per remote.
	if runs := m.runs("git"); len(runs) > 10 {
		t.Errorf("git ran %d times while %d remotes connected: %q", len(runs), manyTestRemotes, runs[:10])
	}

	// One commit to each of 12 remotes at once: 12 fetches, side by
	// side, at most 4 at a time.
	for i := 1; i <= 12; i++ {
		m.push(t, m.repos[i], 1)
	}
	awaitTracked(t, m, d, func() bool {
		for i := 1; i <= 12; i++ {
			if m.tracked(m.names[i]) != 1 {
				return false
			}
		}
		return true
	})
	if most := maxOverlap(t, fetchLog); most < 2 || most > 4 {
		t.Errorf("at most %d fetches ran at once; want 2 to 4 (side by side, bounded)", most)
	}

	// A burst of 12 pushes to one remote, while its first fetch runs:
	// few fetches, the last with the last push.
	before := len(m.runs("git"))
	for i := 1; i <= 12; i++ {
		m.push(t, m.repos[0], i)
	}
	awaitTracked(t, m, d, func() bool { return m.tracked(m.names[0]) == 12 })
	fetches := 0
	for _, r := range m.runs("git")[before:] {
		if strings.Contains(r, " fetch ") && strings.HasSuffix(r, " "+m.names[0]) {
			fetches++
		}
	}
	if fetches < 1 || fetches > 4 {
		t.Errorf("%d fetches for a burst of 12 pushes, want 1 to 4 (coalesced)", fetches)
	}
	t.Logf("12 pushes in a burst: %d fetches", fetches)
}

// awaitTracked reads the daemon's lines until done holds (checked at
// each "fetched"), failing after a minute.
func awaitTracked(t *testing.T, m *many, d *timedProc, done func() bool) {
	t.Helper()
	deadline := time.After(time.Minute)
	for !done() {
		select {
		case l, ok := <-d.lines:
			if !ok {
				t.Fatal("the daemon exited")
			}
			if strings.HasPrefix(l.text, "ERROR ") {
				t.Errorf("daemon: %s", l.text)
			}
		case <-deadline:
			t.Fatal("not fetched within a minute")
		}
	}
}

// maxOverlap reads the "start|end <pid> <ns>" lines of the fetch log and
// returns how many fetches ran at once, at most.
func maxOverlap(t *testing.T, path string) int {
	t.Helper()
	type ev struct {
		at    int64
		delta int
	}
	var evs []ev
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		at, _ := strconv.ParseInt(f[2], 10, 64)
		delta := 1
		if f[0] == "end" {
			delta = -1
		}
		evs = append(evs, ev{at, delta})
	}
	sort.Slice(evs, func(i, j int) bool {
		return evs[i].at < evs[j].at || evs[i].at == evs[j].at && evs[i].delta < evs[j].delta
	})
	most, now := 0, 0
	for _, e := range evs {
		now += e.delta
		most = max(most, now)
	}
	return most
}

// TestSSHSpareSessions: a far side that takes at most 8 watches a
// process (GIT_REMOTE_DAEMON_MAX_WATCHES, as an older notify-changes
// capped at 256) gets 20 remotes in 3 sessions over one ssh master, and
// a push to the last one is fetched.
func TestSSHSpareSessions(t *testing.T) {
	grd, err := exec.LookPath("git-remote-daemon")
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	m := setupMany(t, grd, n, 1, "", "export GIT_REMOTE_DAEMON_MAX_WATCHES=8;")
	d := startTimed(t, grd, m.clone, m.env, "--foreground")
	connected := 0
	deadline := time.After(time.Minute)
	for connected < n {
		select {
		case l, ok := <-d.lines:
			if !ok {
				t.Fatalf("the daemon exited after %d CONNECTED", connected)
			}
			switch {
			case strings.HasPrefix(l.text, "CONNECTED "):
				connected++
			case strings.HasPrefix(l.text, "ERROR "):
				t.Errorf("daemon: %s", l.text)
			}
		case <-deadline:
			t.Fatalf("%d of %d remotes CONNECTED within a minute", connected, n)
		}
	}
	if far := readPids(m.farLog); len(far) != 3 {
		t.Errorf("%d far-side notify-changes processes, want 3 (8 + 8 + 4 watches)", len(far))
	}
	masters := 0
	for _, r := range m.runs("ssh") {
		if strings.Contains(r, " -M ") {
			masters++
		}
	}
	if masters != 1 {
		t.Errorf("%d ssh masters, want 1", masters)
	}
	m.push(t, m.repos[n-1], 1)
	awaitTracked(t, m, d, func() bool { return m.tracked(m.names[n-1]) == 1 })
}
