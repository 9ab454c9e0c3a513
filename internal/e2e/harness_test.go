package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// recordT runs scripts for TestHarness: it records failures instead of
// failing the test, so that scripts that must fail can be run.
type recordT struct {
	testing.TB // the real test: satisfies the rest of testing.TB

	mu     sync.Mutex
	failed bool
	log    strings.Builder
}

func (r *recordT) record(args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintln(&r.log, args...)
}

func (r *recordT) Log(args ...any)                 { r.record(args...) }
func (r *recordT) Logf(format string, args ...any) { r.record(fmt.Sprintf(format, args...)) }
func (r *recordT) Errorf(format string, args ...any) {
	r.record(fmt.Sprintf(format, args...))
	r.mu.Lock()
	r.failed = true
	r.mu.Unlock()
}
func (r *recordT) Fatal(args ...any) { r.record(args...); r.FailNow() }
func (r *recordT) Skip(args ...any)  { r.record(args...); r.FailNow() }
func (r *recordT) FailNow() {
	r.mu.Lock()
	r.failed = true
	r.mu.Unlock()
	runtime.Goexit()
}
func (r *recordT) Failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failed
}
func (r *recordT) Parallel()     {}
func (r *recordT) Verbose() bool { return false }

// Run runs f to its end (or its FailNow) with r itself.
func (r *recordT) Run(name string, f func(testscript.T)) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
}

// TestHarness runs small scripts through the daemon commands and checks
// that those that should fail do: a line totals did not allow, an ERROR
// nothing looked at, a command to a daemon that has exited.
func TestHarness(t *testing.T) {
	t.Parallel()
	const head = "exec git init -q r\ncd r\ndaemon start\ndaemon send FOO\n"
	const logFile = "-- d.log --\nlevel=INFO msg=started\nlevel=INFO msg=CONNECTED line=\"CONNECTED x\"\nlevel=INFO msg=DISCONNECTED line=\"DISCONNECTED x\"\n"
	for _, c := range []struct {
		name   string
		script string
		fails  string // a substring of the failure, "" if it must pass
	}{
		{"totals", head + "daemon close\ndaemon totals ERROR:*=1\n", ""},
		{"totals-wrong", head + "daemon close\ndaemon totals ERROR=2\n", "1 ERROR lines, want 2"},
		{"totals-unnamed", head + "daemon close\ndaemon totals\n", "1 ERROR lines, want 0"},
		{"totals-lists-lines", head + "daemon close\ndaemon totals CONNECTED=1\n", `1   ERROR * line 1: malformed message: unknown message "FOO"`},
		{"error-expected", head + "daemon expect 'ERROR .*'\ndaemon close\n", ""},
		{"error-counted", head + "daemon close\ndaemon count 1 'ERROR .*'\n", ""},
		{"error-unmentioned", head + "daemon close\n", "ERROR lines that no expect, count or totals accounted for"},
		{"error-unmentioned-running", head + "daemon send BAR\ndaemon expect 'ERROR .* line 2: .*'\n", `1  ERROR * line 1: malformed message: unknown message "FOO"`},
		{"restart", head + "daemon close\ndaemon totals ERROR=1\ndaemon start\ndaemon close\ndaemon totals\n", ""},
		{"send-after-close", head + "daemon close\ndaemon send RESUME\n", `daemon send: daemon "" has exited`},
		{"logtotals", "logtotals d.log CONNECTED=1 DISCONNECTED=1\n" + logFile, ""},
		{"logtotals-wrong", "logtotals d.log CONNECTED=1\n" + logFile, "1 DISCONNECTED lines, want 0"},
		{"named", "exec git init -q r\ncd r\ndaemon -n x start\ndaemon -n x close\ndaemon totals\n", `no daemon "" started`},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, c.name+".txtar"), []byte(c.script), 0o644); err != nil {
				t.Fatal(err)
			}
			r := &recordT{TB: t}
			testscript.RunT(r, testscript.Params{Dir: dir, Setup: setup, Cmds: commands(), RequireExplicitExec: true})
			log := r.log.String()
			switch {
			case c.fails == "" && r.Failed():
				t.Errorf("failed:\n%s", log)
			case c.fails != "" && !r.Failed():
				t.Errorf("passed, want a failure with %q:\n%s", c.fails, log)
			case c.fails != "" && !strings.Contains(log, c.fails):
				t.Errorf("failure does not say %q:\n%s", c.fails, log)
			}
		})
	}
}
