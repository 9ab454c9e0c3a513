package e2e

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// manyRemotes is how many ssh remotes BenchmarkSSHManyRemotes watches:
// SSH_REMOTES, default 1000.
func manyRemotes(b *testing.B) int {
	s := os.Getenv("SSH_REMOTES")
	if s == "" {
		return 1000
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 10 {
		b.Fatalf("SSH_REMOTES=%q: want a number of at least 10", s)
	}
	return n
}

// Burst: a push every burstEvery, rotating over burstRemotes remotes.
const (
	burstEvery   = 126 * time.Millisecond
	burstRemotes = 8
)

// BenchmarkSSHManyRemotes starts one foreground daemon (a process of its
// own) with SSH_REMOTES (default 1000) ssh remotes, each a different bare
// repository behind one loopback sshd, and a clone already up to date
// with every one of them (its remote-tracking refs are the remotes'
// refs; no saved state: the daemon derives it). It reports
//
//	s-all-connected     from the daemon's start to its last CONNECTED line
//	procs-git, procs-ssh, procs-far   processes started meanwhile: git (by
//	                    the daemon), ssh (master, sessions) and far-side
//	                    notify-changes, counted by wrappers on its PATH
//	s-child-cpu         CPU of the daemon's children meanwhile (exited
//	                    ones, and the live ssh processes), and
//	s-daemon-cpu        of the daemon itself, s-far-cpu of the far side
//
// then, with b.N pushes each, push (to the bare repository, locally)
// -> "STATUS <remote> fetched" with the pushed commit in the tracking
// ref: isolated (one push at a time to one remote) and in a burst (a
// push every 126 ms, rotating over 8 remotes, not waiting), as medians,
// their ratio x-burst-vs-isolated, and fetches-per-push in the burst
// (below 1: changes coalesced). A measurement, never a pass/fail test.
func BenchmarkSSHManyRemotes(b *testing.B) {
	n := manyRemotes(b)
	grd, err := exec.LookPath("git-remote-daemon")
	if err != nil {
		b.Fatalf("git-remote-daemon not on PATH (testscript.Main puts it there): %v", err)
	}
	m := setupMany(b, grd, n, b.N, "", "")
	names, repos, env, farLog := m.names, m.repos, m.env, m.farLog
	b.ResetTimer()
	start := time.Now()
	d := startTimed(b, grd, m.clone, env, "--foreground")
	connected := 0
	deadline := time.After(2 * time.Minute)
	var errs []string
	for connected < n {
		select {
		case l, ok := <-d.lines:
			if !ok {
				b.Fatalf("the daemon exited after %d of %d CONNECTED", connected, n)
			}
			switch {
			case strings.HasPrefix(l.text, "CONNECTED "):
				connected++
			case strings.HasPrefix(l.text, "ERROR ") && len(errs) < 3:
				errs = append(errs, l.text)
			}
		case <-deadline:
			b.Fatalf("%d of %d remotes CONNECTED within 2 min; first errors: %q", connected, n, errs)
		}
	}
	allConnected := time.Since(start)
	pid := d.cmd.Process.Pid
	childCPU, daemonCPU := treeCPU(b, pid)
	farPids := readPids(farLog)
	var farCPU time.Duration
	for _, p := range farPids {
		farCPU += procCPU(b, p)
	}
	gitRuns, sshRuns := len(m.runs("git")), len(m.runs("ssh"))
	b.ReportMetric(float64(n), "remotes")
	b.ReportMetric(allConnected.Seconds(), "s-all-connected")
	b.ReportMetric(float64(gitRuns), "procs-git")
	b.ReportMetric(float64(sshRuns), "procs-ssh")
	b.ReportMetric(float64(len(farPids)), "procs-far")
	b.ReportMetric(childCPU.Seconds(), "s-child-cpu")
	b.ReportMetric(daemonCPU.Seconds(), "s-daemon-cpu")
	b.ReportMetric(farCPU.Seconds(), "s-far-cpu")

	// The start-up fetches (none expected: the clone is up to date).
	quietLines(d.lines, time.Second, 30*time.Second)
	tracked := m.tracked
	push := func(repo string, i int) time.Time {
		m.push(b, repo, i)
		return time.Now()
	}

	// Isolated: one push at a time, to the last remote.
	var isolated []time.Duration
	last := n - 1
	for i := 1; i <= b.N; i++ {
		pushed := push(repos[last], i)
		for {
			l := awaitPrefix(b, d.lines, "STATUS "+names[last]+" fetched", time.Minute)
			if tracked(names[last]) >= i {
				isolated = append(isolated, l.Sub(pushed))
				break
			}
		}
	}

	// Burst: a push every burstEvery over burstRemotes remotes; push i
	// goes to remote i%burstRemotes, so each remote's pushes are
	// fast-forwards along the chain.
	var mu sync.Mutex
	pushedAt := map[int]time.Time{}
	var wg sync.WaitGroup
	go func() {
		t := time.NewTicker(burstEvery)
		defer t.Stop()
		for i := 1; i <= b.N; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				at := push(repos[i%burstRemotes], i)
				mu.Lock()
				pushedAt[i] = at
				mu.Unlock()
			}(i)
			<-t.C
		}
	}()
	var burst []time.Duration
	fetches := 0
	done := map[int]bool{}
	for len(done) < b.N {
		l := awaitLineAny(b, d.lines, " fetched", time.Minute)
		fetches++
		remote := strings.Fields(l.text)[1]
		r, err := strconv.Atoi(strings.TrimPrefix(remote, "r"))
		if err != nil || r >= burstRemotes {
			continue
		}
		k := tracked(remote)
		mu.Lock()
		for i, at := range pushedAt {
			if i%burstRemotes == r && i <= k && !done[i] {
				done[i] = true
				burst = append(burst, l.at.Sub(at))
			}
		}
		mu.Unlock()
	}
	wg.Wait()
	b.StopTimer()
	iso, bu := reportLatency(b, "isolated-fetched", isolated), reportLatency(b, "burst-fetched", burst)
	b.ReportMetric(bu[0]/iso[0], "x-burst-vs-isolated")
	b.ReportMetric(float64(fetches)/float64(b.N), "fetches-per-push")
	d.stop(b)
	b.Logf("%d ssh remotes (one host): all CONNECTED in %.2fs; started %d git, %d ssh, %d far-side processes; "+
		"CPU: children %.2fs, daemon %.2fs, far side %.2fs; push->fetched median %.1f ms isolated, %.1f ms in a burst "+
		"(a push every %s over %d remotes; %d fetches for %d pushes)",
		n, allConnected.Seconds(), gitRuns, sshRuns, len(farPids), childCPU.Seconds(), daemonCPU.Seconds(), farCPU.Seconds(),
		iso[0], bu[0], burstEvery, burstRemotes, fetches, b.N)
}

// treeCPU returns the CPU of pid's children (those it waited for, and
// its live descendants) and of pid itself.
func treeCPU(b *testing.B, pid int) (children, self time.Duration) {
	ticks := func(fields []string, from, to int) time.Duration {
		var t int64
		for _, f := range fields[from:to] {
			n, _ := strconv.ParseInt(f, 10, 64)
			t += n
		}
		return time.Duration(t) * 10 * time.Millisecond
	}
	stat := func(p int) []string {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			return nil
		}
		i := strings.LastIndexByte(string(data), ')')
		return strings.Fields(string(data[i+1:])) // fields[0] is field 3
	}
	own := stat(pid)
	if own == nil {
		b.Fatalf("no /proc/%d/stat", pid)
	}
	self, children = ticks(own, 11, 13), ticks(own, 13, 15)
	parent := map[int]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if f := stat(p); f != nil {
			parent[p], _ = strconv.Atoi(f[1])
		}
	}
	for p := range parent {
		for q := parent[p]; q > 1; q = parent[q] {
			if q == pid {
				if f := stat(p); f != nil {
					children += ticks(f, 11, 13)
				}
				break
			}
		}
	}
	return children, self
}

// readPids reads the pids a wrapper logged, one a line.
func readPids(path string) []int {
	data, _ := os.ReadFile(path)
	var pids []int
	for _, f := range strings.Fields(string(data)) {
		if p, err := strconv.Atoi(f); err == nil {
			pids = append(pids, p)
		}
	}
	return pids
}

// timedProc is a process whose stdout lines are stamped as they come.
type timedProc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  <-chan timedLine
	exited chan error
}

func startTimed(b testing.TB, prog, dir string, env []string, args ...string) *timedProc {
	cmd := exec.Command(prog, args...)
	cmd.Dir, cmd.Env = dir, env
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	p := &timedProc{cmd: cmd, stdin: stdin, lines: timedLines(stdout), exited: make(chan error, 1)}
	b.Cleanup(func() { p.stop(b) })
	return p
}

// stop closes the process's stdin and waits for it to exit (killing it
// after 10 s).
func (p *timedProc) stop(b testing.TB) {
	if p.stdin == nil {
		return
	}
	p.stdin.Close()
	p.stdin = nil
	go func() {
		for range p.lines { // to its end: Wait closes the pipe
		}
		p.exited <- p.cmd.Wait()
	}()
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		b.Logf("pid %d ignored stdin EOF for 10s: killing it", p.cmd.Process.Pid)
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// awaitPrefix returns when the next line starting with prefix came.
func awaitPrefix(b *testing.B, lines <-chan timedLine, prefix string, timeout time.Duration) time.Time {
	b.Helper()
	return awaitLineAny(b, lines, prefix, timeout).at
}

// awaitLineAny returns the next line that starts with prefix, or (for a
// prefix starting with a space) contains it after "STATUS <remote>".
func awaitLineAny(b *testing.B, lines <-chan timedLine, prefix string, timeout time.Duration) timedLine {
	b.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				b.Fatalf("the daemon exited while waiting for %q", prefix)
			}
			if strings.HasPrefix(l.text, "ERROR ") {
				b.Logf("daemon: %s", l.text)
			}
			if strings.HasPrefix(l.text, prefix) ||
				strings.HasPrefix(prefix, " ") && strings.HasPrefix(l.text, "STATUS ") && strings.HasSuffix(l.text, prefix) {
				return l
			}
		case <-deadline:
			b.Fatalf("no %q within %s", prefix, timeout)
		}
	}
}

// quietLines discards lines until none came for gap (or max passed).
func quietLines(lines <-chan timedLine, gap, max time.Duration) {
	end := time.After(max)
	for {
		select {
		case _, ok := <-lines:
			if !ok {
				return
			}
		case <-time.After(gap):
			return
		case <-end:
			return
		}
	}
}
