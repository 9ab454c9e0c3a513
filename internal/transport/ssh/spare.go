package ssh

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/git-remote-daemon/git-remote-daemon/internal/notify"
)

// One notify-changes process on the far side holds every watch of a
// host's remotes, up to its limit (notify.DefaultMaxWatches, 4096, in
// this version; 256 in older ones). A watch it refuses with "too many
// watches" goes to a spare session: one more notify-changes over the same
// master, started when the first one is full, and so on. Any session
// ending ends the connection: every remote reconnects.

// maxSpares bounds the spare sessions of a connection (sshd's MaxSessions
// is 10 a connection by default, one of them the first session).
const maxSpares = 8

// tooMany reports whether a watch's error is the far side's refusal of
// one more watch.
func tooMany(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "too many watches")
}

// spare returns the session after full (the one that refused a watch),
// starting it when there is none yet.
func (h *host) spare(ctx context.Context, c *conn, full *notify.Client) (*notify.Client, error) {
	c.spareMu.Lock()
	defer c.spareMu.Unlock()
	c.mu.Lock()
	list := append([]*notify.Client{c.client}, c.spares...)
	c.mu.Unlock()
	for i, cl := range list[:len(list)-1] {
		if cl == full {
			return list[i+1], nil
		}
	}
	if len(list) > maxSpares {
		return nil, fmt.Errorf("%s: the far side refused more watches on each of %d sessions", h.target.dest(), len(list))
	}
	cl, err := h.startSpare(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("%s: one more notify-changes session: %w", h.target.dest(), err)
	}
	c.mu.Lock()
	c.spares = append(c.spares, cl)
	c.mu.Unlock()
	h.d.log().Info("the far side is full: watching in one more session", "host", h.target.dest(), "sessions", len(list)+1)
	return cl, nil
}

// startSpare starts one more notify-changes session over c's master.
func (h *host) startSpare(ctx context.Context, c *conn) (*notify.Client, error) {
	opts := append([]string{"-T"}, h.opts()...)
	if c.ctlPath != "" {
		opts = append(opts, "-o", "ControlPath="+c.ctlPath, "-o", "ControlMaster=no")
	}
	args, err := h.cmd.args(h.target, opts, h.remoteCmd)
	if err != nil {
		return nil, err
	}
	s := h.cmd.cmd(args...)
	stderr := &tail{}
	s.Stderr = stderr
	stdin, err := s.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := s.StdoutPipe()
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	select {
	case <-c.done:
		c.mu.Unlock()
		return nil, errors.New("the connection ended")
	default:
	}
	if err := s.Start(); err != nil {
		c.mu.Unlock()
		return nil, fmt.Errorf("start ssh: %w", err)
	}
	c.spareCmd = append(c.spareCmd, s) // killed by c.fail from now on
	c.mu.Unlock()
	// Once it runs, its end ends the connection; one that never gave
	// its banner ends alone.
	var running atomic.Bool
	c.procs.Add(1)
	go func() {
		defer c.procs.Done()
		err := s.Wait()
		stdin.Close()
		if running.Load() {
			c.fail(sessionEnded(err, stderr.String()))
		}
	}()
	cl, err := notify.NewClient(ctx, stdout, stdin)
	if err != nil {
		kill(s)
		return nil, fmt.Errorf("%w; stderr: %s", err, lastLine(stderr.String()))
	}
	running.Store(true)
	select {
	case <-c.done: // ended meanwhile: c.fail may have missed it
		kill(s)
		return nil, errors.New("the connection ended")
	default:
	}
	go h.keepaliveClient(c, cl)
	return cl, nil
}
