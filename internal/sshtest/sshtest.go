// Package sshtest runs a throwaway OpenSSH sshd on 127.0.0.1 for
// integration tests: fresh keys and configs in a private directory, a
// free port, readiness checked with a real login, and every process it
// starts (the listener and each per-connection sshd with its descendants,
// found by walking /proc ppid chains) killed by pid when the test ends.
//
// It needs /usr/sbin/sshd (openssh-server) and ssh, ssh-keygen on PATH; it
// never installs them and fails the test with a clear message instead.
// Run as root or as the user the clients log in as.
package sshtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Server is one running (or stopped) throwaway sshd.
type Server struct {
	Dir  string // private temp dir: host key, client key, sshd_config, ssh_config, known_hosts, log
	Port int    // listening port on 127.0.0.1
	User string // the current user's name, the login user

	// SSHCommand is a value for GIT_SSH_COMMAND: "ssh -F <Dir>/ssh_config".
	// That config sets the client key, known_hosts, strict host key
	// checking and batch mode explicitly; the user's ~/.ssh is not used.
	SSHCommand string

	mu   sync.Mutex
	cmd  *exec.Cmd     // the listener, nil when stopped
	root procInfo      // the listener as seen in /proc at start
	done chan struct{} // closed once the listener has been reaped
	gone bool          // Dir removed: no restart possible
}

// ReadyTimeout bounds how long Start and Restart wait for a first
// successful login.
var ReadyTimeout = 20 * time.Second

var errPortInUse = errors.New("port already in use")

// Start starts a new server (new keys, a free port) and waits until a
// login works. The server is stopped and its directory removed at the
// end of the test; sshd's log is logged if the test failed.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := start()
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("sshtest: sshd log (%s):\n%s", s.Dir, s.Log())
		}
		s.close()
	})
	return s
}

// start is Start without a testing.TB: the server is cleaned up on error
// and by the caller's s.close otherwise.
func start() (*Server, error) {
	if err := checkTools(); err != nil {
		return nil, err
	}
	name, err := currentUser()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "sshtest-")
	if err != nil {
		return nil, fmt.Errorf("sshtest: %v", err)
	}
	s := &Server{Dir: dir, User: name}
	fail := func(err error) (*Server, error) {
		s.close()
		return nil, err
	}
	if err := s.writeKeys(); err != nil {
		return fail(fmt.Errorf("sshtest: keys: %v", err))
	}
	if err := s.writeSSHConfig(); err != nil {
		return fail(fmt.Errorf("sshtest: ssh_config: %v", err))
	}
	for attempt := 1; ; attempt++ {
		if s.Port, err = freePort(); err != nil {
			return fail(err)
		}
		if err := s.writeKnownHosts(); err != nil {
			return fail(fmt.Errorf("sshtest: known_hosts: %v", err))
		}
		if err := s.writeSSHDConfig(); err != nil {
			return fail(err)
		}
		err = s.launch()
		if err == nil {
			return s, nil
		}
		if !errors.Is(err, errPortInUse) || attempt == 3 {
			return fail(err)
		}
	}
}

// ensurePrivsepDir creates sshd's privilege separation directory, which
// a fresh install lacks (sshd -t fails without it too).
func ensurePrivsepDir() error {
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		return fmt.Errorf("sshtest: %v", err)
	}
	return nil
}

func currentUser() (string, error) {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username, nil
	}
	if n := os.Getenv("USER"); n != "" {
		return n, nil
	}
	return "", fmt.Errorf("sshtest: cannot tell the current user's name")
}

// freePort asks the kernel for a free port on 127.0.0.1. It may be taken
// again before sshd binds it: launch reports errPortInUse then.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("sshtest: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// launch starts sshd with the current config and waits for a login.
func (s *Server) launch() error {
	s.mu.Lock()
	gone, running := s.gone, s.cmd != nil
	s.mu.Unlock()
	if gone {
		return fmt.Errorf("sshtest: server already cleaned up")
	}
	if running {
		return fmt.Errorf("sshtest: sshd already running")
	}
	if err := ensurePrivsepDir(); err != nil {
		return err
	}
	// Readiness is checked against the key sshd serves now, whatever the
	// clients' known_hosts says (NewHostKey then Restart must work).
	if err := s.writeKnownHostsTo(readyKnownHostsName); err != nil {
		return fmt.Errorf("sshtest: %v", err)
	}
	lf, err := os.OpenFile(s.path(logName), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("sshtest: %v", err)
	}
	var off int64
	if fi, err := lf.Stat(); err == nil {
		off = fi.Size()
	}
	fmt.Fprintf(lf, "--- sshtest: starting %s on 127.0.0.1:%d at %s\n", SSHDPath, s.Port, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(SSHDPath, "-D", "-e", "-f", s.path(sshdConfigName))
	// A file, not a pipe: per-connection children inherit stderr, and a
	// pipe would keep Wait waiting for them.
	cmd.Stdout, cmd.Stderr = lf, lf
	// If the test binary dies, the listener goes with it (Linux).
	dieWithParent(cmd)
	err = cmd.Start()
	lf.Close()
	if err != nil {
		return fmt.Errorf("sshtest: start %s: %v", SSHDPath, err)
	}
	root, err := readStat(cmd.Process.Pid)
	if err != nil { // cannot happen: not reaped yet
		root = procInfo{pid: cmd.Process.Pid}
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	s.mu.Lock()
	s.cmd, s.root, s.done = cmd, root, done
	s.mu.Unlock()

	if err := s.waitReady(cmd, done); err != nil {
		s.Stop()
		log := s.logSince(off)
		if strings.Contains(log, "Address already in use") {
			return fmt.Errorf("%w: 127.0.0.1:%d\n%s", errPortInUse, s.Port, log)
		}
		return fmt.Errorf("sshtest: sshd on 127.0.0.1:%d not ready: %v\nsshd log:\n%s", s.Port, err, log)
	}
	return nil
}

// waitReady polls with a real login until one succeeds, sshd exits or
// ReadyTimeout passes.
func (s *Server) waitReady(cmd *exec.Cmd, done <-chan struct{}) error {
	deadline := time.Now().Add(ReadyTimeout)
	for {
		select {
		case <-done:
			return fmt.Errorf("sshd exited: %v", cmd.ProcessState)
		default:
		}
		err := s.login()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no login within %v; last attempt: %v", ReadyTimeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// login runs `ssh ... true` once.
func (s *Server) login() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := s.SSH(ctx, []string{"-o", "ConnectTimeout=5", "-o", "UserKnownHostsFile=" + quoteCfg(s.path(readyKnownHostsName))}, "true")
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// SSH returns an ssh command for this server: the client config, then
// sshOpts (e.g. "-o", "ConnectTimeout=2"), the port and user@127.0.0.1,
// then the remote command words.
func (s *Server) SSH(ctx context.Context, sshOpts []string, remote ...string) *exec.Cmd {
	args := append([]string{"-F", s.path(sshConfigName)}, sshOpts...)
	args = append(args, "-p", strconv.Itoa(s.Port), s.User+"@127.0.0.1")
	return exec.CommandContext(ctx, "ssh", append(args, remote...)...)
}

// URL returns "ssh://<user>@127.0.0.1:<port><path>"; path should be absolute.
func (s *Server) URL(path string) string {
	return fmt.Sprintf("ssh://%s@127.0.0.1:%d%s", s.User, s.Port, path)
}

// Addr returns "127.0.0.1:<port>".
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)) }

// Stop SIGKILLs the listener and every per-connection sshd with all its
// descendants (stopping the whole tree first so nothing forks or gets
// orphaned unseen), and waits for them to be gone. Idempotent.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	killAll(freeze(s.root, true), 5*time.Second)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
	}
	s.cmd, s.done = nil, nil
	_ = os.Remove(s.path(pidFileName))
}

// close stops the server and removes its directory.
func (s *Server) close() {
	s.Stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.gone {
		s.gone = true
		_ = os.RemoveAll(s.Dir)
	}
}

// Restart starts sshd again on the same port with the same keys (after
// stopping it if it runs) and waits until a login works.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if err := s.restart(); err != nil {
		t.Fatalf("%v", err)
	}
}

func (s *Server) restart() error {
	s.Stop()
	var err error
	for range 10 {
		if err = s.launch(); !errors.Is(err, errPortInUse) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
	return err
}

// KillConnections SIGKILLs the per-connection sshd processes (the
// listener's descendants) and waits for them to be gone; the listener
// keeps accepting.
func (s *Server) KillConnections() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		killAll(freeze(s.root, false), 5*time.Second)
	}
}

// Pause SIGSTOPs the listener and all its descendants: a stalled server.
// New connections are accepted by the kernel but never answered.
func (s *Server) Pause() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		signalTree(s.root, true, syscall.SIGSTOP)
	}
}

// Resume SIGCONTs the listener and all its descendants.
func (s *Server) Resume() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		signalTree(s.root, true, syscall.SIGCONT)
	}
}

// NewHostKey replaces the host key with a new one. known_hosts keeps the
// old key, so clients refuse the server once it has been restarted (and
// sshd may already serve the new key to new connections before that,
// since each connection re-executes sshd). TrustHostKey undoes the refusal.
func (s *Server) NewHostKey(t testing.TB) {
	t.Helper()
	if err := s.newHostKey(); err != nil {
		t.Fatalf("%v", err)
	}
}

func (s *Server) newHostKey() error {
	if err := keygen(s.path(hostKeyName), "sshtest-host"); err != nil {
		return fmt.Errorf("sshtest: new host key: %v", err)
	}
	return nil
}

// TrustHostKey rewrites known_hosts with the current host key.
func (s *Server) TrustHostKey(t testing.TB) {
	t.Helper()
	if err := s.trustHostKey(); err != nil {
		t.Fatalf("%v", err)
	}
}

func (s *Server) trustHostKey() error {
	if err := s.writeKnownHosts(); err != nil {
		return fmt.Errorf("sshtest: known_hosts: %v", err)
	}
	return nil
}

// Log returns sshd's stderr so far (all runs of this server).
func (s *Server) Log() string { return s.logSince(0) }

// Pid returns the listener's pid, 0 when stopped.
func (s *Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.root.pid
}

// Pids returns the listener's pid and those of all its live descendants
// (per-connection sshd processes and what they run); nil when stopped.
func (s *Server) Pids() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || !alive(s.root) {
		return nil
	}
	pids := []int{s.root.pid}
	for _, p := range descendants(s.root.pid) {
		pids = append(pids, p.pid)
	}
	return pids
}
