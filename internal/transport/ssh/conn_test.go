package ssh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/internal/gitcfg"
	"github.com/git-remote-daemon/git-remote-daemon/internal/notify"
	"github.com/git-remote-daemon/git-remote-daemon/internal/transport"
	"github.com/git-remote-daemon/git-remote-daemon/watch"
)

// notifyEnv makes the test binary the far side's notify-changes, on its
// stdin and stdout.
const notifyEnv = "GRD_SSH_TEST_NOTIFY"

func TestMain(m *testing.M) {
	if os.Getenv(notifyEnv) != "" {
		if err := notify.Serve(context.Background(), os.Stdin, os.Stdout, notify.ServerOptions{}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// hangGuard fails a test that waits this long: far more than any delay
// of the code under test, far less than the fake ssh's sleeps.
const hangGuard = 60 * time.Second

type reporter struct{}

func (reporter) Status(string) {}

// fakeSSH writes a stand-in for ssh (variant "simple": it gets the
// destination and the remote command) running the shell script that
// script returns for the test's directory, and returns the watchers'
// environment using it (Dir is that directory), and a bare repository.
func fakeSSH(t *testing.T, script func(dir string) string) (transport.Env, string) {
	t.Setenv("GIT_SSH_COMMAND", "")
	t.Setenv("GIT_SSH", "")
	t.Setenv("GIT_SSH_VARIANT", "")
	dir := t.TempDir()
	prog := filepath.Join(dir, "fake-ssh")
	if err := os.WriteFile(prog, []byte("#!/bin/sh\n"+script(dir)+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	repo := filepath.Join(dir, "repo.git")
	if out, err := exec.Command("git", "init", "-q", "--bare", repo).CombinedOutput(); err != nil {
		t.Fatalf("git init: %v: %s", err, out)
	}
	cfg, err := gitcfg.Parse([]byte("core.sshcommand\n" + prog + "\x00ssh.variant\nsimple\x00"))
	if err != nil {
		t.Fatal(err)
	}
	return transport.Env{Dir: dir, Config: cfg, Report: reporter{}, Logger: slog.New(slog.DiscardHandler)}, repo
}

func newWatcher(t *testing.T, d *Dialer, name, repo string, env transport.Env) transport.Watcher {
	t.Helper()
	w, err := d.NewWatcher(gitcfg.Remote{Name: name, URL: "ssh://far.example" + repo}, env)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// waitFile waits for a file the fake ssh writes, and returns its content.
func waitFile(t *testing.T, path string) string {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for time.Now().Before(deadline) {
		if data, err := os.ReadFile(path); err == nil && strings.HasSuffix(string(data), "\n") {
			return strings.TrimSpace(string(data))
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s never written", path)
	return ""
}

func (d *Dialer) users(key string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	h := d.hosts[key]
	if h == nil {
		return 0
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.users
}

// One watcher stopping while the host's connection is being dialed does
// not fail the other watchers waiting for that dial.
func TestSharedDialOutlivesFirstWaiter(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// Held at the gate until the test opens it, then notify-changes.
	env, repo := fakeSSH(t, func(dir string) string {
		return fmt.Sprintf("echo $$ >%s/started\nwhile [ ! -e %s/gate ]; do sleep 0.05; done\nexec env %s=1 %s",
			dir, dir, notifyEnv, exe)
	})
	gate := filepath.Join(env.Dir, "gate")
	started := filepath.Join(env.Dir, "started")
	d := &Dialer{}
	defer d.Close()
	w1 := newWatcher(t, d, "a", repo, env)
	w2 := newWatcher(t, d, "b", repo, env)

	ctx1, cancel1 := context.WithCancel(context.Background())
	defer cancel1()
	done1 := make(chan error, 1)
	go func() { done1 <- w1.Watch(ctx1, func(watch.Update) error { return nil }) }()
	waitFile(t, started) // the dial is under way, held at the gate

	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	first := make(chan watch.Update, 1)
	done2 := make(chan error, 1)
	go func() {
		done2 <- w2.Watch(ctx2, func(u watch.Update) error {
			select {
			case first <- u:
			default:
			}
			return nil
		})
	}()
	key := w1.(*watcher).key
	for d.users(key) < 2 {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // let w2 reach its wait for the dial

	cancel1()
	select {
	case <-done1:
	case <-time.After(hangGuard):
		t.Fatal("the first watcher did not stop")
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case u := <-first:
		if !u.First {
			t.Errorf("first update %+v lacks First", u)
		}
	case err := <-done2:
		t.Fatalf("the second watcher failed with the first one's stop: %v", err)
	case <-time.After(hangGuard):
		t.Fatal("the second watcher got no refs")
	}
	cancel2()
	if err := <-done2; err != nil {
		t.Errorf("second watcher: %v", err)
	}
}

func alive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return syscall.Kill(pid, 0) == nil
	}
	s := string(data)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

// An ssh that closed its output but does not exit neither keeps a
// stopping watcher waiting nor lives on after the last watcher left.
func TestStuckSessionIsKilled(t *testing.T) {
	// Close stdout (the banner never comes), keep stderr, never exit.
	env, repo := fakeSSH(t, func(dir string) string {
		return fmt.Sprintf("exec >&-\nsleep 600 &\necho $! >%s/pid\nwait", dir)
	})
	pidFile := filepath.Join(env.Dir, "pid")
	d := &Dialer{}
	defer d.Close()
	w := newWatcher(t, d, "a", repo, env)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.Watch(ctx, func(watch.Update) error { return nil }) }()
	pid, err := strconv.Atoi(waitFile(t, pidFile))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	time.Sleep(50 * time.Millisecond) // let the banner read fail
	cancel()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Logf("Watch: %v", err)
		}
	case <-time.After(hangGuard):
		t.Fatal("Watch still waits for the stuck ssh")
	}
	deadline := time.Now().Add(hangGuard)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatal("the stuck ssh's child still runs")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
