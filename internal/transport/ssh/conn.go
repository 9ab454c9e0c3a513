package ssh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/internal/notify"
	"github.com/git-remote-daemon/git-remote-daemon/internal/transport"
)

// Keepalive timing: the session is pinged every PingEvery; a connection
// from which nothing arrived for DeadAfter is taken for dead (a stalled
// server is noticed within DeadAfter+PingEvery).
const (
	PingEvery = 3 * time.Second
	DeadAfter = 9 * time.Second
)

// How long to wait before retrying after errors that retrying soon cannot
// fix (RELOAD and RESUME retry at once).
const (
	RefusedRetry = 5 * time.Minute // host key or authentication refused
	MissingRetry = 30 * time.Second
)

// conn is one live connection to a host: an OpenSSH master (when the
// program is OpenSSH) that every session, fetch and poll to the host
// shares, and one session running notify-changes for all the host's
// watched repositories.
type conn struct {
	ctlPath string
	muxPath string // the git socket (see mux.go), when the far side has mux1
	master  *exec.Cmd
	session *exec.Cmd
	stdin   io.WriteCloser
	client  *notify.Client // nil in polling mode
	// noCommand is set when the far side has no notify-changes: the
	// connection then only serves ref polling.
	noCommand error

	// spares are more notify-changes sessions over the same master, for
	// watches a far side refused with "too many watches" (see spare.go).
	spareMu  sync.Mutex // held while a spare starts
	spares   []*notify.Client
	spareCmd []*exec.Cmd

	done     chan struct{}
	stopOnce sync.Once
	mu       sync.Mutex
	err      error
	procs    sync.WaitGroup
}

// fail ends the connection with err (the first reason wins).
func (c *conn) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
	c.stopOnce.Do(func() {
		if c.stdin != nil {
			c.stdin.Close()
		}
		kill(c.session)
		c.mu.Lock()
		spares := c.spareCmd
		c.mu.Unlock()
		for _, s := range spares {
			kill(s)
		}
		kill(c.master)
		close(c.done)
	})
}

// Err says why the connection ended.
func (c *conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// close ends the connection and waits for its processes.
func (c *conn) close() {
	c.fail(errors.New("closed"))
	c.procs.Wait()
	if c.ctlPath != "" {
		_ = os.Remove(c.ctlPath)
	}
}

// tail keeps the last bytes a process wrote to stderr, for errors.
type tail struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 4096 {
		t.buf = t.buf[len(t.buf)-4096:]
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.buf))
}

// dial connects to the host: starts the master and waits until it is
// authenticated, then starts the notify-changes session and reads its
// banner. A far side without notify-changes leaves a connection in
// polling mode.
func (h *host) dial(ctx context.Context) (*conn, error) {
	c := &conn{done: make(chan struct{})}
	ok := false
	defer func() {
		if !ok {
			c.close()
		}
	}()
	var sessionOpts []string
	if h.cmd.openSSH() {
		c.ctlPath = h.d.controlPath(h.key)
		_ = os.Remove(c.ctlPath) // a stale socket from a killed daemon
		if err := h.startMaster(ctx, c); err != nil {
			return nil, err
		}
		sessionOpts = []string{"-o", "ControlPath=" + c.ctlPath, "-o", "ControlMaster=no"}
	}
	args, err := h.cmd.args(h.target, append(append([]string{"-T"}, h.opts()...), sessionOpts...), h.remoteCmd)
	if err != nil {
		return nil, err
	}
	s := h.cmd.cmd(args...)
	stderr := &tail{}
	s.Stderr = stderr
	if c.stdin, err = s.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := s.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := s.Start(); err != nil {
		return nil, fmt.Errorf("start ssh: %w", err)
	}
	c.session = s
	exited := make(chan error, 1)
	c.procs.Add(1)
	go func() {
		defer c.procs.Done()
		exited <- s.Wait()
	}()
	type result struct {
		client *notify.Client
		err    error
	}
	banner := make(chan result, 1)
	go func() {
		cl, err := notify.NewClient(ctx, stdout, c.stdin)
		banner <- result{cl, err}
	}()
	select {
	case r := <-banner:
		if r.err != nil {
			if ctx.Err() != nil || errors.Is(r.err, notify.ErrBannerTimeout) { // the session still runs: no exit to wait for
				return nil, fmt.Errorf("%s: %w; stderr: %s", h.target.dest(), r.err, stderr.String())
			}
			werr := waitExit(ctx, s, exited)
			return h.sessionFailed(c, werr, stderr.String(), r.err, &ok)
		}
		c.client = r.client
		if err := h.negotiate(ctx, c); err != nil {
			return nil, err
		}
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(60 * time.Second):
		return nil, fmt.Errorf("%s: no notify-changes banner within 60s; stderr: %s", h.target.dest(), stderr.String())
	}
	c.procs.Add(1)
	go func() {
		defer c.procs.Done()
		select {
		case err := <-exited:
			c.fail(sessionEnded(err, stderr.String()))
		case <-c.done:
		}
	}()
	go h.keepalive(c)
	ok = true
	return c, nil
}

// How long a session whose output ended before its banner has to exit
// by itself (its exit status tells why it failed), and how much of that
// is left once the host's context ended; then it is killed.
const (
	exitWait  = 10 * time.Second
	exitGrace = 2 * time.Second
)

// waitExit waits for a session to exit, killing it if it takes longer
// than exitWait, or than exitGrace after ctx ended: a stuck ssh must not
// keep the host (and the runners waiting for it) from stopping.
func waitExit(ctx context.Context, cmd *exec.Cmd, exited <-chan error) error {
	t := time.NewTimer(exitWait)
	defer t.Stop()
	select {
	case err := <-exited:
		return err
	case <-t.C:
	case <-ctx.Done():
		g := time.NewTimer(exitGrace)
		defer g.Stop()
		select {
		case err := <-exited:
			return err
		case <-g.C:
		}
	}
	kill(cmd)
	return <-exited // Wait returns within gitexec.WaitDelay of the kill
}

// sessionFailed sorts out a session that ended before its banner: no
// notify-changes on the far side means polling; anything else is an error.
func (h *host) sessionFailed(c *conn, werr error, stderr string, bannerErr error, ok *bool) (*conn, error) {
	var ee *exec.ExitError
	code := -1
	if errors.As(werr, &ee) {
		code = ee.ExitCode()
	}
	missing := code == 127 || (code == 128 && strings.Contains(stderr, "unrecognized command")) ||
		strings.Contains(stderr, "command not found")
	if missing && c.master != nil {
		c.noCommand = fmt.Errorf("no %q on %s (exit %d: %s)", h.remoteCmd, h.target.dest(), code, lastLine(stderr))
		c.session = nil
		*ok = true
		return c, nil
	}
	if code == 255 {
		return nil, classify(h.target, stderr)
	}
	return nil, fmt.Errorf("%s: %q: %v (exit %d): %s", h.target.dest(), h.remoteCmd, bannerErr, code, lastLine(stderr))
}

func sessionEnded(err error, stderr string) error {
	if err == nil {
		return fmt.Errorf("ssh session ended: %s", lastLine(stderr))
	}
	return fmt.Errorf("ssh session ended (%v): %s", err, lastLine(stderr))
}

// startMaster runs `ssh -M -N` and waits for its control socket, which
// appears once the connection is authenticated.
func (h *host) startMaster(ctx context.Context, c *conn) error {
	opts := append(h.opts(), "-M", "-N", "-o", "ControlPath="+c.ctlPath, "-o", "ControlPersist=no")
	args, err := h.cmd.args(h.target, opts, "")
	if err != nil {
		return err
	}
	m := h.cmd.cmd(args...)
	stderr := &tail{}
	m.Stderr = stderr
	if err := m.Start(); err != nil {
		return fmt.Errorf("start ssh: %w", err)
	}
	c.master = m
	exited := make(chan error, 1)
	c.procs.Add(1)
	go func() {
		defer c.procs.Done()
		err := m.Wait()
		exited <- err
		c.fail(fmt.Errorf("ssh connection to %s ended (%v): %s", h.target.dest(), err, lastLine(stderr.String())))
	}()
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		if _, err := os.Stat(c.ctlPath); err == nil {
			return nil
		}
		select {
		case <-exited:
			return classify(h.target, stderr.String())
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// classify turns ssh's complaint into an error, marking those that
// retrying soon cannot fix.
func classify(t target, stderr string) error {
	line := lastLine(stderr)
	switch {
	case strings.Contains(stderr, "Host key verification failed"), strings.Contains(stderr, "HOST IDENTIFICATION HAS CHANGED"):
		return &transport.RetryAfter{After: RefusedRetry, Err: fmt.Errorf(
			"%s: host key verification failed; not connecting (check known_hosts; retrying in %s or at RELOAD/RESUME)", t.dest(), RefusedRetry)}
	case strings.Contains(stderr, "Permission denied"):
		return &transport.RetryAfter{After: RefusedRetry, Err: fmt.Errorf(
			"%s: authentication failed: %s (retrying in %s or at RELOAD/RESUME)", t.dest(), line, RefusedRetry)}
	case strings.Contains(stderr, "Could not resolve hostname"):
		return &transport.RetryAfter{After: time.Minute, Err: fmt.Errorf("%s: %s", t.dest(), line)}
	}
	if line == "" {
		line = "ssh exited"
	}
	return fmt.Errorf("%s: %s", t.dest(), line)
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return strings.TrimSpace(s)
}

// keepalive pings the session and fails the connection when the far side
// went silent (a stalled server, a dead network) or the session ended.
func (h *host) keepalive(c *conn) { h.keepaliveClient(c, c.client) }

// keepaliveClient pings one session of c (the first, or a spare).
func (h *host) keepaliveClient(c *conn, cl *notify.Client) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-c.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	err := cl.Keepalive(ctx, PingEvery, DeadAfter)
	switch {
	case errors.Is(err, notify.ErrNoAnswer):
		c.fail(fmt.Errorf("%s: %w; the connection stalled", h.target.dest(), err))
	case err != nil:
		c.fail(err)
	}
}

// negotiate asks the far side for streams; with them (and a private
// directory for the socket), the connection's git commands use them.
func (h *host) negotiate(ctx context.Context, c *conn) error {
	ctx, cancel := context.WithTimeout(ctx, negotiateWait)
	defer cancel()
	if _, err := c.client.Negotiate(ctx); err != nil {
		return fmt.Errorf("%s: %w", h.target.dest(), err)
	}
	if !c.client.Mux() || c.ctlPath == "" {
		return nil
	}
	if err := c.listenMux(); err != nil {
		h.d.log().Warn("fetching over new ssh sessions", "host", h.target.dest(), "err", err)
		return nil
	}
	h.d.log().Debug("fetching over the notify session", "host", h.target.dest(), "socket", c.muxPath)
	return nil
}
