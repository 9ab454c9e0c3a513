//go:build unix

package gitexec

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// parentEnv makes the test binary act as a parent that starts a git
// which runs until it is killed, prints git's pid and waits to be killed.
const parentEnv = "GITEXEC_TEST_PARENT"

func TestMain(m *testing.M) {
	if os.Getenv(parentEnv) != "" {
		cmd := Command(context.Background(), "", "-c", "alias.wait=!sleep 600", "wait")
		if err := cmd.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Println(cmd.Process.Pid)
		select {}
	}
	os.Exit(m.Run())
}

// hangGuard fails the test if a wait takes this long: far longer than
// any delay of this package, far shorter than the sleeps that would
// otherwise keep the test hanging.
const hangGuard = 60 * time.Second

func TestNoTerminalPrompt(t *testing.T) {
	t.Setenv("GIT_TERMINAL_PROMPT", "1")
	out, err := Output(context.Background(), t.TempDir(), []string{"EXTRA=x"},
		"-c", `alias.env=!echo "$GIT_TERMINAL_PROMPT $EXTRA"`, "env")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(out)); got != "0 x" {
		t.Errorf("GIT_TERMINAL_PROMPT and EXTRA seen by git's child: %q, want %q", got, "0 x")
	}
}

func TestErrorCarriesStderr(t *testing.T) {
	_, err := Output(context.Background(), t.TempDir(), nil, "rev-parse", "--verify", "nothing-here")
	var gerr *Error
	if !errors.As(err, &gerr) {
		t.Fatalf("error %v (%T) is not an *Error", err, err)
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 128 {
		t.Errorf("error %v does not wrap git's exit status 128", err)
	}
	if !strings.Contains(gerr.Stderr, "fatal:") || !strings.Contains(err.Error(), "git rev-parse --verify nothing-here: exit status 128: fatal:") {
		t.Errorf("error %q, stderr %q", err, gerr.Stderr)
	}
}

// waitForPid reads the pid a shell wrote to file.
func waitForPid(t *testing.T, file string) int {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for time.Now().Before(deadline) {
		if data, err := os.ReadFile(file); err == nil && strings.HasSuffix(string(data), "\n") {
			pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
			if err != nil {
				t.Fatal(err)
			}
			return pid
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no pid in %s", file)
	return 0
}

// alive reports whether pid is a live process (a zombie waiting for a
// parent that does not reap counts as gone).
func alive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return syscall.Kill(pid, 0) == nil // no /proc: ask the kernel
	}
	s := string(data)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

func waitGone(t *testing.T, pid int, what string) {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("%s (pid %d) still runs %s later", what, pid, hangGuard)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func killAfterTest(t *testing.T, pid int) {
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
}

// A grandchild that left git's process group but keeps its stderr open
// must not keep Wait from returning once the context is cancelled.
func TestCancelWithStderrHeldOpen(t *testing.T) {
	if _, err := exec.LookPath("setsid"); err != nil {
		t.Fatalf("setsid (util-linux) is needed: %v", err)
	}
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := Output(ctx, dir, nil, "-c", "alias.hold=!setsid sh -c 'echo $$ >"+pidFile+"; exec sleep 600' & sleep 600", "hold")
		done <- err
	}()
	pid := waitForPid(t, pidFile)
	killAfterTest(t, pid)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) && !strings.Contains(fmt.Sprint(err), "signal") {
			t.Errorf("Output after cancel: %v", err)
		}
	case <-time.After(hangGuard):
		t.Fatal("Output still waits for the grandchild's stderr")
	}
	if !alive(pid) {
		t.Fatal("the grandchild outside git's process group died: the test proves nothing")
	}
}

// Cancelling the context ends git's whole process group, including a
// grandchild that ignores SIGTERM.
func TestCancelKillsGroup(t *testing.T) {
	for name, script := range map[string]string{
		"sleep":         "sleep 600 & echo $! >%s; wait",
		"ignoring TERM": "(trap '' TERM; exec sleep 600) & echo $! >%s; wait",
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			pidFile := filepath.Join(dir, "pid")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			cmd := Command(ctx, dir, "-c", "alias.grand=!"+fmt.Sprintf(script, pidFile), "grand")
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			pid := waitForPid(t, pidFile)
			killAfterTest(t, pid)
			cancel()
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case <-done:
			case <-time.After(hangGuard):
				t.Fatal("Wait did not return after cancel")
			}
			waitGone(t, pid, "the grandchild")
		})
	}
}

func TestSummary(t *testing.T) {
	lock := `error: cannot lock ref 'refs/remotes/origin/main': Unable to create '/r/.git/refs/remotes/origin/main.lock': File exists.

Another git process seems to be running in this repository, e.g.
an editor opened by 'git commit'. Please make sure all processes
are terminated then try again. If it still fails, a git process
may have crashed in this repository earlier:
remove the file manually to continue.
`
	for in, want := range map[string]string{
		lock: "error: cannot lock ref 'refs/remotes/origin/main': Unable to create '/r/.git/refs/remotes/origin/main.lock': File exists.",
		"ssh: connect to host h port 22: Connection refused\r\nfatal: Could not read from remote repository.\n\nPlease make sure you have the correct access rights\nand the repository exists.\n": "ssh: connect to host h port 22: Connection refused; fatal: Could not read from remote repository.",
		"one\ntwo\nhint: x\nthree\nfour\n": "two; three; four",
		"":                                 "",
	} {
		if got := Summary(in, 3); got != want {
			t.Errorf("Summary(%q) = %q, want %q", in, got, want)
		}
	}
}
