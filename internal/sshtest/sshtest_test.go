package sshtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// result is what one ssh (or git) run gave.
type result struct {
	out, errOut string
	code        int // exit code, -1 if killed
	took        time.Duration
}

// runCmd runs cmd with stdin from an empty pipe (not a tty, not /dev/null).
func runCmd(t *testing.T, cmd *exec.Cmd) result {
	t.Helper()
	var out, errOut strings.Builder
	cmd.Stdin = strings.NewReader("")
	cmd.Stdout, cmd.Stderr = &out, &errOut
	cmd.WaitDelay = time.Second
	t0 := time.Now()
	err := cmd.Run()
	r := result{out: out.String(), errOut: errOut.String(), took: time.Since(t0)}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("%v: %v", cmd.Args, err)
	}
	return r
}

// ssh runs `ssh [opts] user@127.0.0.1 remote...` against s with a 20 s cap.
func ssh(t *testing.T, s *Server, opts []string, remote ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return runCmd(t, s.SSH(ctx, opts, remote...))
}

func mustLogin(t *testing.T, s *Server) {
	t.Helper()
	if r := ssh(t, s, nil, "echo", "ok"); r.code != 0 || r.out != "ok\n" {
		t.Fatalf("login: exit %d, stdout %q, stderr %q\nsshd log:\n%s", r.code, r.out, r.errOut, s.Log())
	}
}

// session is a long-running `ssh ... sleep 60`, started and confirmed
// running on the server.
type session struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when ssh has exited
	err  error         // cmd.Wait's, once done
}

func openSession(t *testing.T, s *Server) *session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	cmd := s.SSH(ctx, nil, "echo started; exec sleep 60")
	cmd.Stdin = strings.NewReader("")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if line != "started\n" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("session: read %q, %v\nsshd log:\n%s", line, err, s.Log())
	}
	se := &session{cmd: cmd, done: make(chan struct{})}
	go func() {
		se.err = cmd.Wait()
		close(se.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-se.done
	})
	return se
}

// waitEnd waits up to limit for the session's ssh to exit and returns
// its exit code and how long that took.
func (se *session) waitEnd(t *testing.T, limit time.Duration) (int, time.Duration) {
	t.Helper()
	t0 := time.Now()
	select {
	case <-se.done:
		var ee *exec.ExitError
		if errors.As(se.err, &ee) {
			return ee.ExitCode(), time.Since(t0)
		}
		if se.err != nil {
			t.Fatalf("session: %v", se.err)
		}
		return 0, time.Since(t0)
	case <-time.After(limit):
		t.Fatalf("session still open after %v", limit)
		return 0, 0
	}
}

// snapshot records the server's processes now (listener and descendants).
func snapshot(t *testing.T, s *Server) []procInfo {
	t.Helper()
	var ps []procInfo
	for _, pid := range s.Pids() {
		if p, err := readStat(pid); err == nil {
			ps = append(ps, p)
		}
	}
	return ps
}

func comms(ps []procInfo) []string {
	var out []string
	for _, p := range ps {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p.pid))
		out = append(out, fmt.Sprintf("%d:%s", p.pid, strings.TrimSpace(string(b))))
	}
	return out
}

func assertGone(t *testing.T, ps []procInfo) {
	t.Helper()
	for _, p := range ps {
		if alive(p) {
			t.Errorf("pid %d still alive (of %v)", p.pid, comms(ps))
		}
	}
}

func TestEchoNoTTY(t *testing.T) {
	t.Parallel()
	s := Start(t)
	if s.Port <= 0 || s.User == "" || s.Dir == "" {
		t.Fatalf("server fields: %+v", s)
	}
	if want := "ssh -F " + filepath.Join(s.Dir, "ssh_config"); s.SSHCommand != want {
		t.Errorf("SSHCommand = %q, want %q", s.SSHCommand, want)
	}
	if got, want := s.URL("/srv/x.git"), fmt.Sprintf("ssh://%s@127.0.0.1:%d/srv/x.git", s.User, s.Port); got != want {
		t.Errorf("URL = %q, want %q", got, want)
	}
	if r := ssh(t, s, nil, "echo hi"); r.code != 0 || r.out != "hi\n" {
		t.Fatalf("echo hi: exit %d, stdout %q, stderr %q", r.code, r.out, r.errOut)
	}
	for _, opts := range [][]string{nil, {"-T"}} {
		r := ssh(t, s, opts, "if test -t 0; then echo tty; else echo notty; fi")
		if r.code != 0 || r.out != "notty\n" {
			t.Errorf("ssh %v test -t 0: exit %d, stdout %q, stderr %q", opts, r.code, r.out, r.errOut)
		}
	}
	// SSHCommand as a shell would run it for git, with a HOME holding no
	// ssh files at all.
	cmd := exec.Command("sh", "-c", fmt.Sprintf(`$GIT_SSH_COMMAND -p %d %s@127.0.0.1 echo via-sh`, s.Port, s.User))
	cmd.Env = append(os.Environ(), "GIT_SSH_COMMAND="+s.SSHCommand, "HOME="+t.TempDir())
	if r := runCmd(t, cmd); r.code != 0 || r.out != "via-sh\n" {
		t.Errorf("sh -c $GIT_SSH_COMMAND: exit %d, stdout %q, stderr %q", r.code, r.out, r.errOut)
	}
}

// gitEnv is an environment for git that reads no user or system config.
func gitEnv(t *testing.T, s *Server) []string {
	return append(os.Environ(), "HOME="+t.TempDir(), "GIT_CONFIG_NOSYSTEM=1",
		"GIT_SSH_COMMAND="+s.SSHCommand, "GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
		"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
}

func git(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Env = env
	return runCmd(t, cmd)
}

func mustGit(t *testing.T, env []string, args ...string) string {
	t.Helper()
	r := git(t, env, args...)
	if r.code != 0 {
		t.Fatalf("git %v: exit %d\n%s%s", args, r.code, r.out, r.errOut)
	}
	return strings.TrimSpace(r.out)
}

// bareRepo makes a bare repository with one commit on main.
func bareRepo(t *testing.T, env []string) (dir, head string) {
	dir = filepath.Join(t.TempDir(), "repo.git")
	mustGit(t, env, "init", "-q", "--bare", "-b", "main", dir)
	tree := mustGit(t, env, "--git-dir", dir, "hash-object", "-t", "tree", "-w", "/dev/null")
	head = mustGit(t, env, "--git-dir", dir, "commit-tree", "-m", "one", tree)
	mustGit(t, env, "--git-dir", dir, "update-ref", "refs/heads/main", head)
	return dir, head
}

func TestGitLsRemote(t *testing.T) {
	t.Parallel()
	s := Start(t)
	env := gitEnv(t, s)
	dir, head := bareRepo(t, env)
	r := git(t, append(env, "GIT_TRACE_PACKET=1"), "ls-remote", s.URL(dir))
	if r.code != 0 || !strings.Contains(r.out, head+"\trefs/heads/main\n") {
		t.Fatalf("ls-remote: exit %d, stdout %q, stderr:\n%s", r.code, r.out, r.errOut)
	}
	// git sends GIT_PROTOCOL; AcceptEnv lets protocol v2 through.
	if !strings.Contains(r.errOut, "version 2") {
		t.Errorf("ls-remote did not speak protocol v2:\n%s", r.errOut)
	}
	clone := filepath.Join(t.TempDir(), "clone")
	mustGit(t, env, "clone", "-q", s.URL(dir), clone)
	if got := mustGit(t, env, "-C", clone, "rev-parse", "HEAD"); got != head {
		t.Errorf("clone HEAD = %s, want %s", got, head)
	}
}

func TestKillConnectionsStopRestart(t *testing.T) {
	t.Parallel()
	s := Start(t)
	listener := s.Pid()
	se := openSession(t, s)
	before := snapshot(t, s)
	if len(before) < 3 {
		t.Fatalf("expected listener + connection processes, got %v", comms(before))
	}
	s.KillConnections()
	code, took := se.waitEnd(t, 5*time.Second)
	t.Logf("session ended %v after KillConnections, ssh exit %d", took, code)
	if code != 255 {
		t.Errorf("ssh exit = %d, want 255", code)
	}
	assertGone(t, before[1:])
	if s.Pid() != listener || !alive(before[0]) {
		t.Fatalf("listener gone after KillConnections")
	}
	mustLogin(t, s)

	s.Stop()
	assertGone(t, before[:1])
	if r := ssh(t, s, nil, "true"); r.code != 255 || !strings.Contains(r.errOut, "Connection refused") {
		t.Errorf("login after Stop: exit %d, stderr %q; want 255, Connection refused", r.code, r.errOut)
	}
	s.Stop() // idempotent
	port := s.Port
	t0 := time.Now()
	s.Restart(t)
	t.Logf("Restart took %v", time.Since(t0))
	if s.Port != port || s.Pid() == 0 || s.Pid() == listener {
		t.Errorf("after Restart: port %d (was %d), pid %d (was %d)", s.Port, port, s.Pid(), listener)
	}
	mustLogin(t, s)
}

func TestPauseResume(t *testing.T) {
	t.Parallel()
	s := Start(t)
	s.Pause()
	r := ssh(t, s, []string{"-o", "ConnectTimeout=2"}, "true")
	t.Logf("login while paused: exit %d after %v: %s", r.code, r.took.Round(time.Millisecond), strings.TrimSpace(r.errOut))
	if r.code != 255 {
		t.Errorf("login while paused: exit %d, want 255", r.code)
	}
	if r.took < 1500*time.Millisecond {
		t.Errorf("login while paused failed after %v, before the 2 s timeout: %s", r.took, r.errOut)
	}
	s.Resume()
	mustLogin(t, s)
}

func TestNewHostKey(t *testing.T) {
	t.Parallel()
	s := Start(t)
	env := gitEnv(t, s)
	dir, _ := bareRepo(t, env)
	s.NewHostKey(t)
	s.Restart(t)
	r := ssh(t, s, nil, "true")
	if r.code != 255 || !strings.Contains(r.errOut, "Host key verification failed") {
		t.Errorf("ssh after NewHostKey: exit %d, stderr %q; want 255, Host key verification failed", r.code, r.errOut)
	}
	if r := git(t, env, "ls-remote", s.URL(dir)); r.code != 128 || !strings.Contains(r.errOut, "Host key verification failed") {
		t.Errorf("git ls-remote after NewHostKey: exit %d, stderr %q; want 128", r.code, r.errOut)
	}
	s.TrustHostKey(t)
	mustLogin(t, s)
}

func TestNoProcessLeftBehind(t *testing.T) {
	t.Parallel()
	s := Start(t)
	se1, se2 := openSession(t, s), openSession(t, s)
	ps := snapshot(t, s)
	t.Logf("processes: %v", comms(ps))
	if len(ps) < 5 {
		t.Fatalf("expected listener + 2 connections' processes, got %v", comms(ps))
	}
	s.Stop()
	assertGone(t, ps)
	se1.waitEnd(t, 5*time.Second)
	se2.waitEnd(t, 5*time.Second)
	if s.Pid() != 0 || s.Pids() != nil {
		t.Errorf("after Stop: Pid %d, Pids %v", s.Pid(), s.Pids())
	}
	s.Stop()

	// The test cleanup stops a paused server with open sessions and
	// removes its directory.
	var inner *Server
	t.Run("cleanup", func(t *testing.T) {
		inner = Start(t)
		openSession(t, inner)
		ps = snapshot(t, inner)
		inner.Pause()
	})
	assertGone(t, ps)
	if _, err := os.Stat(inner.Dir); !os.IsNotExist(err) {
		t.Errorf("%s not removed: %v", inner.Dir, err)
	}
}
