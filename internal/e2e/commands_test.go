package e2e

import (
	"io"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/git-remote-daemon/git-remote-daemon/internal/sshtest"
)

// waitLimit bounds every wait in a script; it is a hang guard, not a
// speed target.
const waitLimit = 20 * time.Second

func commands() map[string]func(ts *testscript.TestScript, neg bool, args []string) {
	return map[string]func(ts *testscript.TestScript, neg bool, args []string){
		"netns":     cmdNetns, // netns_test.go: real NATs
		"daemon":    cmdDaemon,
		"logtotals": cmdLogTotals,
		"waitref":   cmdWaitRef,
		"signal":    cmdSignal,
		"sshd":      sshtest.Cmd,
		"udpport":   cmdUDPPort,
		"paircode":  cmdPairCode,
		"prosody":   cmdProsody, // xmpp_test.go
		"ejabberd":  cmdEjabberd,
	}
}

// env is the environment a script's commands see.
func env(ts *testscript.TestScript) []string {
	var out []string
	for _, k := range []string{"HOME", "XDG_CONFIG_HOME", "GIT_CONFIG_NOSYSTEM", "GIT_AUTHOR_NAME",
		"GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "GIT_TERMINAL_PROMPT", "PATH", "TMPDIR",
		"GIT_REMOTE_DAEMON_DEBUG", "GIT_SSH_COMMAND", "GIT_SSH", "GIT_SSH_VARIANT", "GORACE"} {
		if v := ts.Getenv(k); v != "" {
			out = append(out, k+"="+v)
		}
	}
	return out
}

// cmdDaemon drives `git-remote-daemon --foreground` (several at once
// when named with -n NAME before the verb):
//
//	daemon start [args...]     start it in the current directory
//	daemon send LINE           write LINE to its stdin
//	daemon expect REGEXP       wait for an output line matching REGEXP, after the last one matched
//	! daemon expect REGEXP D   no such line comes within duration D
//	daemon count N REGEXP      exactly N lines so far match
//	daemon seen FILE           every object name in FILE was in a CHANGED line
//	daemon wait-count N RE     wait until at least N lines match
//	daemon procs NAME MAX      1..MAX processes named NAME run below the daemon
//	daemon close               close stdin; it must exit 0
//	daemon kill                kill it
//	daemon logged REGEXP       wait for a line of its stderr (log) matching REGEXP
//	daemon totals VERB=N ...   exact line counts so far (see below)
//
// totals takes VERB=N or VERB:REMOTE=N for the verbs CONNECTED,
// DISCONNECTED, CHANGED, STATUS and ERROR (REMOTE * is the daemon
// itself); N may be a range N..M where a count is legitimately variable,
// with a comment in the script saying why. A verb not named must have no
// lines; a verb named only with remotes has lines for those remotes only.
// After close or kill the daemon's lines stay for totals, count, seen and
// expect until it is started again; a totals after close first waits for
// its output to end.
func cmdDaemon(ts *testscript.TestScript, neg bool, args []string) {
	name := ""
	if len(args) > 1 && args[0] == "-n" {
		name, args = args[1], args[2:]
	}
	if len(args) == 0 {
		ts.Fatalf("usage: daemon [-n NAME] start|send|expect|count|seen|wait-count|procs|close|kill|totals ...")
	}
	if args[0] == "start" {
		startDaemon(ts, name, args[1:])
		return
	}
	d := daemonsOf(ts).get(name)
	if d == nil {
		ts.Fatalf("daemon %s: no daemon %q started", args[0], name)
	}
	switch args[0] {
	case "send", "procs", "close", "kill":
		if d.hasExited() {
			ts.Fatalf("daemon %s: daemon %q has exited", args[0], name)
		}
	}
	switch args[0] {
	case "send":
		line := strings.Join(args[1:], " ")
		if _, err := io.WriteString(d.stdin, line+"\n"); err != nil {
			ts.Fatalf("send %q: %v", line, err)
		}
	case "expect":
		if len(args) < 2 {
			ts.Fatalf("usage: daemon expect REGEXP [DURATION]")
		}
		re := regexp.MustCompile("^(?:" + args[1] + ")$")
		limit := waitLimit
		if len(args) > 2 {
			var err error
			if limit, err = time.ParseDuration(args[2]); err != nil {
				ts.Fatalf("bad duration: %v", err)
			}
		}
		line, found := d.await(re, limit)
		switch {
		case found && neg:
			ts.Fatalf("unexpected line %q", line)
		case !found && !neg:
			ts.Fatalf("no line matching %q within %s; output so far:\n%s\nstderr:\n%s", args[1], limit, d.output(), tail(d.stderr.String(), 40))
		case found:
			ts.Logf("matched %q", line)
		}
	case "count":
		if len(args) != 3 {
			ts.Fatalf("usage: daemon count N REGEXP")
		}
		want, err := strconv.Atoi(args[1])
		if err != nil {
			ts.Fatalf("bad count: %v", err)
		}
		re := regexp.MustCompile("^(?:" + args[2] + ")$")
		if n := d.countMatching(re, !neg); (n == want) == neg {
			ts.Fatalf("%d lines match %q (want %d); output:\n%s", n, args[2], want, d.output())
		}
	case "totals":
		if neg {
			ts.Fatalf("daemon totals cannot be negated")
		}
		want, err := parseTotals(args[1:])
		if err != nil {
			ts.Fatalf("usage: daemon totals VERB=N|VERB:REMOTE=N ...: %v", err)
		}
		d.mu.Lock()
		closed := d.stdinClosed
		d.mu.Unlock()
		if closed {
			// Nothing may arrive after the check.
			ts.Check(d.waitExit())
		}
		lines := d.snapshot()
		if bad := checkTotals(lines, want); len(bad) > 0 {
			ts.Fatalf("daemon totals:\n\t%s\nall %d lines:\n%s\nstderr:\n%s", strings.Join(bad, "\n\t"), len(lines), d.output(), tail(d.stderr.String(), 40))
		}
		d.markAll(len(lines))
	case "close":
		if err := d.closeStdin(); err != nil {
			ts.Fatalf("%v", err)
		}
		if (d.err == nil) == neg {
			ts.Fatalf("daemon exit: %v; stderr:\n%s", d.err, tail(d.stderr.String(), 40))
		}
	case "wait-count":
		// daemon wait-count N REGEXP: wait until at least N lines match
		if len(args) != 3 {
			ts.Fatalf("usage: daemon wait-count N REGEXP")
		}
		want, err := strconv.Atoi(args[1])
		ts.Check(err)
		re := regexp.MustCompile("^(?:" + args[2] + ")$")
		deadline := time.Now().Add(waitLimit)
		for d.countMatching(re, true) < want {
			if time.Now().After(deadline) {
				ts.Fatalf("%d lines match %q after %s, want %d; output:\n%s", d.countMatching(re, false), args[2], waitLimit, want, d.output())
			}
			time.Sleep(10 * time.Millisecond)
		}
	case "procs":
		// daemon procs NAME MAX: at most MAX processes named NAME run under the daemon
		if len(args) != 3 {
			ts.Fatalf("usage: daemon procs NAME MAX")
		}
		max, err := strconv.Atoi(args[2])
		ts.Check(err)
		n := countDescendants(d.cmd.Process.Pid, args[1])
		ts.Logf("%d %s processes under the daemon", n, args[1])
		if n > max || n == 0 {
			ts.Fatalf("%d %s processes under the daemon, want 1..%d", n, args[1], max)
		}
	case "seen":
		// daemon seen FILE: every object name in FILE is in a CHANGED line
		data, err := os.ReadFile(ts.MkAbs(args[1]))
		ts.Check(err)
		all := strings.Join(d.snapshot(), "\n")
		for _, sha := range strings.Fields(string(data)) {
			if !regexp.MustCompile(`(?m)^CHANGED \S+ .*` + sha).MatchString(all) {
				ts.Fatalf("%s never reported; output:\n%s", sha, d.output())
			}
		}
	case "logged":
		if len(args) != 2 {
			ts.Fatalf("usage: daemon logged REGEXP")
		}
		re := regexp.MustCompile("(?m)" + args[1])
		deadline := time.Now().Add(waitLimit)
		for !re.MatchString(d.stderr.String()) {
			if time.Now().After(deadline) {
				ts.Fatalf("no log line matching %q after %s; stderr:\n%s", args[1], waitLimit, tail(d.stderr.String(), 40))
			}
			time.Sleep(10 * time.Millisecond)
		}
	case "kill":
		_ = d.cmd.Process.Kill()
		ts.Check(d.waitExit())
	default:
		ts.Fatalf("daemon: unknown verb %q", args[0])
	}
}

// countDescendants counts the processes named name below pid.
func countDescendants(pid int, name string) int {
	parent := map[int]int{}
	comm := map[int]string{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(stat)
		open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || close < open {
			continue
		}
		f := strings.Fields(s[close+1:])
		if len(f) < 2 {
			continue
		}
		pp, _ := strconv.Atoi(f[1])
		parent[p], comm[p] = pp, s[open+1:close]
	}
	n := 0
	for p, c := range comm {
		if c != name {
			continue
		}
		for q := parent[p]; q > 1; q = parent[q] {
			if q == pid {
				n++
				break
			}
		}
	}
	return n
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// cmdWaitRef waits until two refs (each DIR REF) name the same object:
//
//	waitref up.git refs/heads/main b refs/remotes/origin/main
func cmdWaitRef(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 4 || neg {
		ts.Fatalf("usage: waitref DIR1 REF1 DIR2 REF2 (no negation: it would only wait)")
	}
	resolve := func(dir, ref string) string {
		cmd := exec.Command("git", "rev-parse", "--verify", "-q", ref)
		cmd.Dir = ts.MkAbs(dir)
		cmd.Env = env(ts)
		out, _ := cmd.Output()
		return strings.TrimSpace(string(out))
	}
	deadline := time.Now().Add(waitLimit)
	var a, b string
	for time.Now().Before(deadline) {
		a, b = resolve(args[0], args[1]), resolve(args[2], args[3])
		if a != "" && a == b {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	ts.Fatalf("%s %s = %q, %s %s = %q after %s", args[0], args[1], a, args[2], args[3], b, waitLimit)
}

// cmdSignal sends a signal to the process whose pid a file holds:
//
//	signal HUP .git/remote-daemon/daemon.pid
func cmdSignal(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 || neg {
		ts.Fatalf("usage: signal HUP|TERM|INT PIDFILE")
	}
	sig, ok := map[string]syscall.Signal{"HUP": syscall.SIGHUP, "TERM": syscall.SIGTERM, "INT": syscall.SIGINT}[args[0]]
	if !ok {
		ts.Fatalf("unknown signal %s", args[0])
	}
	data, err := os.ReadFile(ts.MkAbs(args[1]))
	ts.Check(err)
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	ts.Check(err)
	ts.Check(syscall.Kill(pid, sig))
}

// cmdUDPPort sets VAR to a free UDP port on 127.0.0.1: udpport VAR
func cmdUDPPort(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 || neg {
		ts.Fatalf("usage: udpport VAR")
	}
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	ts.Check(err)
	port := c.LocalAddr().(*net.UDPAddr).Port
	ts.Check(c.Close())
	ts.Setenv(args[0], strconv.Itoa(port))
}
