package e2e

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// idleRepos is how many remotes (and far-side repositories) the idle
// benchmark watches.
const idleRepos = 300

// idlePeriod is how long BenchmarkIdle measures each side: IDLE_SECONDS,
// default 60.
func idlePeriod(b *testing.B) time.Duration {
	s := os.Getenv("IDLE_SECONDS")
	if s == "" {
		return 60 * time.Second
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil || n <= 0 {
		b.Fatalf("IDLE_SECONDS=%q: want a positive number of seconds", s)
	}
	return time.Duration(n * float64(time.Second))
}

// BenchmarkIdle measures what doing nothing costs: a foreground daemon
// with 300 local remotes, and notify-changes (the far side of ssh
// remotes) watching 300 repositories, each left idle for IDLE_SECONDS
// (default 60) while the client pings as the ssh transport does. It
// reports the CPU of the process and its children, from /proc before
// and after (utime+stime and the children's cutime+cstime), as % of one
// core, and how many times git ran (through a counting wrapper on PATH).
// Target: under 0.1% each side, no git. A measurement, not a pass/fail
// test: run it with scripts/bench (or IDLE_SECONDS=5 for a smoke run).
func BenchmarkIdle(b *testing.B) {
	idle := idlePeriod(b)
	grd, err := exec.LookPath("git-remote-daemon")
	if err != nil {
		b.Fatalf("git-remote-daemon not on PATH (testscript.Main puts it there): %v", err)
	}
	realGit, err := exec.LookPath("git")
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	// A git that counts its runs, first on the daemons' PATH.
	bin, gitLog := filepath.Join(dir, "bin"), filepath.Join(dir, "git-runs")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		b.Fatal(err)
	}
	wrapper := fmt.Sprintf("#!/bin/sh\necho x >>'%s'\nexec '%s' \"$@\"\n", gitLog, realGit)
	if err := os.WriteFile(filepath.Join(bin, "git"), []byte(wrapper), 0o755); err != nil {
		b.Fatal(err)
	}
	gitEnv := isolatedEnv(dir)
	daemonEnv := isolatedEnv(dir, "PATH="+bin+string(filepath.ListSeparator)+os.Getenv("PATH"))

	// One repository with a commit, copied (without running git) into
	// idleRepos bare repositories.
	tmpl := filepath.Join(dir, "template.git")
	runCmd(b, gitEnv, dir, "git", "init", "-q", "--bare", tmpl)
	tree := runCmd(b, gitEnv, dir, "git", "--git-dir="+tmpl, "hash-object", "-t", "tree", "-w", "/dev/null")
	c := runCmd(b, gitEnv, dir, "git", "--git-dir="+tmpl, "commit-tree", tree, "-m", "one")
	runCmd(b, gitEnv, dir, "git", "--git-dir="+tmpl, "update-ref", "refs/heads/main", c)
	repos := make([]string, idleRepos)
	var cfg strings.Builder
	for i := range repos {
		repos[i] = filepath.Join(dir, "remotes", fmt.Sprintf("r%03d.git", i))
		if err := os.CopyFS(repos[i], os.DirFS(tmpl)); err != nil {
			b.Fatal(err)
		}
		fmt.Fprintf(&cfg, "[remote \"r%03d\"]\n\turl = %s\n\tfetch = +refs/heads/*:refs/remotes/r%03d/*\n", i, repos[i], i)
	}
	clone, empty := filepath.Join(dir, "clone"), filepath.Join(dir, "empty")
	runCmd(b, gitEnv, dir, "git", "init", "-q", clone)
	runCmd(b, gitEnv, dir, "git", "init", "-q", empty)
	f, err := os.OpenFile(filepath.Join(clone, ".git", "config"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := f.WriteString(cfg.String()); err != nil {
		b.Fatal(err)
	}
	f.Close()

	b.ResetTimer()
	for range b.N {
		// Our side: the daemon with idleRepos local remotes, and beside
		// it, for comparison, one with none.
		daemon := startIdle(b, grd, clone, daemonEnv, []string{"--foreground"})
		daemon.await(b, "CONNECTED ", idleRepos, 5*time.Minute)
		base := startIdle(b, grd, empty, daemonEnv, []string{"--foreground"})
		daemon.quiet(b, gitLog)
		cpu, baseCPU, runs := measureAll(b, []*idleProc{daemon}, []*idleProc{base}, idle, gitLog)
		daemon.stop(b)
		base.stop(b)
		report(b, "local", cpu, baseCPU, runs, idle)

		// The far side: one notify-changes watching idleRepos
		// repositories on one stream, as the ssh transport has it.
		p := startIdle(b, grd, dir, daemonEnv, []string{"notify-changes"})
		for i := range idleRepos {
			p.send(b, fmt.Sprintf("WATCH %d %s\n", i, repos[i]))
		}
		p.await(b, "READY ", idleRepos, 5*time.Minute)
		sides := []*idleProc{p}
		base = startIdle(b, grd, dir, daemonEnv, []string{"notify-changes"})
		sides[0].quiet(b, gitLog)
		cpu, baseCPU, runs = measureAll(b, sides, []*idleProc{base}, idle, gitLog)
		for _, p := range append(sides, base) {
			p.stop(b)
		}
		report(b, "notify", cpu, baseCPU, runs, idle)
	}
}

func report(b *testing.B, side string, cpu, baseCPU time.Duration, runs int, idle time.Duration) {
	pct := 100 * cpu.Seconds() / idle.Seconds()
	basePct := 100 * baseCPU.Seconds() / idle.Seconds()
	b.ReportMetric(pct, "%core-"+side)
	b.ReportMetric(basePct, "%core-"+side+"-empty")
	b.ReportMetric(float64(runs), "git-runs-"+side)
	b.Logf("%-6s %d repositories idle %s: %.3f%% of a core (target < 0.1%%), %s CPU, git ran %d times; "+
		"the same with no repositories: %.3f%%", side, idleRepos, idle, pct, cpu, runs, basePct)
}

// idleProc is a git-remote-daemon process whose stdout is read line by
// line.
type idleProc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string
	exited chan error
}

func startIdle(b *testing.B, grd, dir string, env, args []string) *idleProc {
	cmd := exec.Command(grd, args...)
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
	p := &idleProc{cmd: cmd, stdin: stdin, lines: make(chan string, 4096), exited: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
		p.exited <- cmd.Wait()
	}()
	b.Cleanup(func() { p.stop(b) })
	return p
}

func (p *idleProc) send(b *testing.B, line string) {
	if _, err := io.WriteString(p.stdin, line); err != nil {
		b.Fatalf("write %q: %v", line, err)
	}
}

// await reads lines until n of them start with prefix.
func (p *idleProc) await(b *testing.B, prefix string, n int, limit time.Duration) {
	deadline := time.After(limit)
	for seen := 0; seen < n; {
		select {
		case l, ok := <-p.lines:
			if !ok {
				b.Fatalf("exited after %d of %d %q lines", seen, n, prefix)
			}
			if strings.HasPrefix(l, prefix) {
				seen++
			} else if strings.HasPrefix(l, "ERROR") {
				b.Fatalf("%s", l)
			}
		case <-deadline:
			b.Fatalf("%d of %d %q lines within %s", seen, n, prefix, limit)
		}
	}
}

// quiet waits until git has not run for 3 s (the start-up fetches are
// over) and the refs are older than the watcher's racy window.
func (p *idleProc) quiet(b *testing.B, gitLog string) {
	last, since := countRuns(gitLog), time.Now()
	for time.Since(since) < 3*time.Second {
		time.Sleep(250 * time.Millisecond)
		if n := countRuns(gitLog); n != last {
			last, since = n, time.Now()
		}
	}
}

// measureAll leaves ps and base idle for idle, pinging every 3 s as the
// ssh transport does, and returns the CPU ps and their children used, the
// CPU base and theirs used, and how many times git ran meanwhile.
func measureAll(b *testing.B, ps, base []*idleProc, idle time.Duration, gitLog string) (cpu, baseCPU time.Duration, runs int) {
	sum := func(ps []*idleProc) time.Duration {
		var sum time.Duration
		for _, p := range ps {
			sum += procCPU(b, p.cmd.Process.Pid)
		}
		return sum
	}
	before, baseBefore, runsBefore := sum(ps), sum(base), countRuns(gitLog)
	ps = append(slices.Clone(ps), base...)
	end := time.Now().Add(idle)
	ping := time.NewTicker(3 * time.Second)
	defer ping.Stop()
	for time.Now().Before(end) {
		select {
		case <-ping.C:
			for _, p := range ps {
				if len(p.cmd.Args) > 1 && p.cmd.Args[1] == "notify-changes" {
					p.send(b, "PING\n")
				}
			}
		case <-time.After(time.Until(end)):
		}
		for _, p := range ps {
			drain(p.lines)
		}
	}
	ps = ps[:len(ps)-len(base)]
	return sum(ps) - before, sum(base) - baseBefore, countRuns(gitLog) - runsBefore
}

func drain(ch chan string) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

func (p *idleProc) stop(b *testing.B) {
	if p.stdin == nil {
		return
	}
	p.stdin.Close()
	p.stdin = nil
	go func() {
		for range p.lines {
		}
	}()
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		b.Logf("pid %d ignored stdin EOF for 10s: killing it", p.cmd.Process.Pid)
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// procCPU is the CPU time of pid and of its children it waited for, from
// /proc/<pid>/stat (utime, stime, cutime, cstime: fields 14-17, in
// USER_HZ ticks, 100 a second on Linux).
func procCPU(b *testing.B, pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	i := strings.LastIndexByte(string(data), ')')
	fields := strings.Fields(string(data[i+1:]))
	var ticks int64
	for _, f := range fields[11:15] { // field 3 is fields[0]
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			b.Fatalf("/proc/%d/stat: %v", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}

func countRuns(gitLog string) int {
	data, _ := os.ReadFile(gitLog)
	return strings.Count(string(data), "\n")
}
