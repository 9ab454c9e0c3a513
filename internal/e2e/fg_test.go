package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// fg is a foreground daemon that a script talks to. Once it has exited
// (daemon close or kill) it keeps its lines, so that a final totals or
// count can still look at them, until a new one starts under its name.
type fg struct {
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	done   chan struct{} // closed once stdout has ended and the process has exited
	err    error
	stderr *lockedWriter

	mu          sync.Mutex
	lines       []string
	mentioned   []bool // lines[i] was matched by expect, count, wait-count or totals
	cursor      int
	more        chan struct{}
	stdinClosed bool
	exited      bool
}

// daemonsKey is the key of a script's *daemonSet in its Values.
type daemonsKey struct{}

// daemonSet is one script's foreground daemons, by name ("" without -n).
type daemonSet struct {
	mu     sync.Mutex
	byName map[string]*fg
	all    []*fg // every daemon the script started, in order
}

// trackDaemons gives a script its daemonSet and, at its end, fails it if
// a foreground daemon printed an ERROR line that no expect, count,
// wait-count or totals accounted for: an error nobody looked at.
func trackDaemons(env *testscript.Env) {
	set := &daemonSet{byName: map[string]*fg{}}
	env.Values[daemonsKey{}] = set
	env.Defer(func() {
		tb, ok := env.T().(testing.TB)
		if !ok {
			env.T().Fatal("daemon: cannot check for unmentioned ERROR lines: the script's T is not a testing.TB")
		}
		if tb.Failed() {
			return
		}
		set.mu.Lock()
		all := set.all
		set.mu.Unlock()
		for _, d := range all {
			if stray := d.unmentioned("ERROR "); len(stray) > 0 {
				tb.Errorf("daemon %q printed ERROR lines that no expect, count or totals accounted for:\n%s\nall its lines:\n%s",
					d.name, strings.Join(stray, "\n"), d.output())
			}
		}
	})
}

func daemonsOf(ts *testscript.TestScript) *daemonSet {
	set, ok := ts.Value(daemonsKey{}).(*daemonSet)
	if !ok {
		ts.Fatalf("daemon: the script's Setup did not call trackDaemons")
	}
	return set
}

func (s *daemonSet) get(name string) *fg {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byName[name]
}

func startDaemon(ts *testscript.TestScript, name string, args []string) {
	set := daemonsOf(ts)
	if d := set.get(name); d != nil && !d.hasExited() {
		ts.Fatalf("daemon %q already started", name)
	}
	cmd := exec.Command("git-remote-daemon", append([]string{"--foreground"}, args...)...)
	inNetns(ts, cmd) // netns daemon HOST ...: in HOST's network
	cmd.Dir = ts.MkAbs(".")
	cmd.Env = env(ts)
	d := &fg{name: name, cmd: cmd, done: make(chan struct{}), stderr: &lockedWriter{}, more: make(chan struct{}, 1)}
	cmd.Stderr = d.stderr
	var err error
	if d.stdin, err = cmd.StdinPipe(); err != nil {
		ts.Fatalf("%v", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		ts.Fatalf("%v", err)
	}
	if err := cmd.Start(); err != nil {
		ts.Fatalf("start daemon: %v", err)
	}
	lines := make(chan struct{})
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			d.mu.Lock()
			d.lines = append(d.lines, sc.Text())
			d.mentioned = append(d.mentioned, false)
			d.mu.Unlock()
			select {
			case d.more <- struct{}{}:
			default:
			}
		}
	}()
	go func() {
		<-lines
		d.err = cmd.Wait()
		close(d.done)
	}()
	set.mu.Lock()
	set.byName[name] = d
	set.all = append(set.all, d)
	set.mu.Unlock()
	dir := cmd.Dir
	ts.Defer(func() {
		_ = d.cmd.Process.Kill() // os.ErrProcessDone once it has exited
		<-d.done
		if f, err := os.OpenFile(filepath.Join(dir, "daemon.stderr"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644); err == nil {
			_, _ = f.WriteString(d.stderr.String())
			f.Close()
		}
	})
}

// closeStdin closes the daemon's stdin and waits for it to exit.
func (d *fg) closeStdin() error {
	d.mu.Lock()
	d.stdinClosed = true
	d.mu.Unlock()
	d.stdin.Close()
	if err := d.waitExit(); err != nil {
		return fmt.Errorf("after stdin closed: %w", err)
	}
	return nil
}

// waitExit waits until the daemon's output has ended and it has exited.
func (d *fg) waitExit() error {
	select {
	case <-d.done:
	case <-time.After(waitLimit):
		return fmt.Errorf("daemon did not exit within %s", waitLimit)
	}
	d.mu.Lock()
	d.exited = true
	d.mu.Unlock()
	return nil
}

func (d *fg) hasExited() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.exited
}

// await waits up to limit for a line matching re after the cursor.
func (d *fg) await(re *regexp.Regexp, limit time.Duration) (string, bool) {
	deadline := time.After(limit)
	for {
		if line, ok := d.scan(re); ok {
			return line, true
		}
		select {
		case <-d.more:
		case <-d.done: // every line has been read
			return d.scan(re)
		case <-deadline:
			return "", false
		}
	}
}

// scan looks for a line matching re after the cursor and moves past it.
func (d *fg) scan(re *regexp.Regexp) (string, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := d.cursor; i < len(d.lines); i++ {
		if re.MatchString(d.lines[i]) {
			d.cursor = i + 1
			d.mentioned[i] = true
			return d.lines[i], true
		}
	}
	return "", false
}

// countMatching counts the lines matching re; with mark, they count as
// mentioned.
func (d *fg) countMatching(re *regexp.Regexp, mark bool) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for i, l := range d.lines {
		if re.MatchString(l) {
			n++
			d.mentioned[i] = d.mentioned[i] || mark
		}
	}
	return n
}

// snapshot returns the lines so far.
func (d *fg) snapshot() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.lines...)
}

// markAll marks the first n lines as mentioned.
func (d *fg) markAll(n int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := range n {
		d.mentioned[i] = true
	}
}

// unmentioned returns, numbered, the lines starting with prefix that
// nothing mentioned.
func (d *fg) unmentioned(prefix string) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for i, l := range d.lines {
		if strings.HasPrefix(l, prefix) && !d.mentioned[i] {
			out = append(out, fmt.Sprintf("%4d  %s", i+1, l))
		}
	}
	return out
}

// output is every line so far, numbered; ✓ marks those up to the last
// one expect matched.
func (d *fg) output() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var b strings.Builder
	for i, l := range d.lines {
		mark := " "
		if i < d.cursor {
			mark = "✓"
		}
		fmt.Fprintf(&b, "%4d %s %s\n", i+1, mark, l)
	}
	return b.String()
}

// lockedWriter collects a daemon's stderr.
type lockedWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
