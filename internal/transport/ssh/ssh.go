// Package ssh watches ordinary ssh git remotes: it runs
// `git-remote-daemon notify-changes` on the remote host over the system's
// ssh program, invoked as git invokes it (GIT_SSH_COMMAND, core.sshCommand,
// GIT_SSH, port, user) in batch mode, so ~/.ssh/config, the agent,
// ProxyJump and known_hosts apply exactly as for `git fetch`.
//
// All remotes on one host share one connection: an OpenSSH master, one
// notify-changes session watching every repository, and the fetches that
// follow a change, which skip the ssh handshake. A far side without
// notify-changes is polled with `git ls-remote` over the same connection.
package ssh

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/internal/gitcfg"
	"github.com/git-remote-daemon/git-remote-daemon/internal/transport"
	"github.com/git-remote-daemon/git-remote-daemon/internal/transport/poll"
	"github.com/git-remote-daemon/git-remote-daemon/watch"
)

// DefaultCommand runs on the far side unless remote.<name>.daemonCommand
// says otherwise.
const DefaultCommand = "git-remote-daemon notify-changes"

// Dialer makes ssh watchers; hosts are shared among them.
type Dialer struct {
	Logger *slog.Logger

	mu      sync.Mutex
	hosts   map[string]*host
	sockDir string
}

var _ transport.Dialer = (*Dialer)(nil)

// host is the shared state of every remote on one host (same ssh
// command, user, host, port and remote command).
type host struct {
	d         *Dialer
	key       string
	target    target // path unused
	cmd       sshCommand
	remoteCmd string

	// ctx is the host's lifetime: from its first user to its last. The
	// shared connection is dialed under it, never under one watcher's
	// context, so one watcher stopping does not fail the others.
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	users   int
	conn    *conn
	dialing *dialing // the dial in progress, if any
	nextID  int
}

// dialing is one dial of a host's connection, shared by every watcher
// that waits for it.
type dialing struct {
	done chan struct{} // closed when the dial ended
	err  error         // set before done is closed
}

// NewWatcher returns a watcher for the ssh remote r.
func (d *Dialer) NewWatcher(r gitcfg.Remote, env transport.Env) (transport.Watcher, error) {
	t, err := parseURL(r.URL)
	if err != nil {
		return nil, err
	}
	every, err := poll.Interval(env.Config, r.Name)
	if err != nil {
		return nil, err
	}
	remoteCmd := DefaultCommand
	if v, ok := env.Config.Get("remote." + r.Name + ".daemoncommand"); ok && v != "" {
		remoteCmd = v
	}
	cmd := resolveSSH(env.Config)
	key := fmt.Sprintf("%q %q %q %s %d %q %s", cmd.shell, cmd.program, t.User, t.Host, t.Port, remoteCmd, cmd.variant)
	return &watcher{d: d, key: key, target: t, cmd: cmd, remoteCmd: remoteCmd, remote: r.Name, every: every, env: env}, nil
}

type watcher struct {
	d         *Dialer
	key       string
	target    target
	cmd       sshCommand
	remoteCmd string
	remote    string
	every     time.Duration
	env       transport.Env

	mu   sync.Mutex
	live *conn
}

func (d *Dialer) acquire(w *watcher) *host {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.hosts == nil {
		d.hosts = map[string]*host{}
	}
	h, ok := d.hosts[w.key]
	if !ok {
		h = &host{d: d, key: w.key, target: w.target, cmd: w.cmd, remoteCmd: w.remoteCmd}
		h.ctx, h.cancel = context.WithCancel(context.Background())
		d.hosts[w.key] = h
	}
	h.mu.Lock()
	h.users++
	h.mu.Unlock()
	return h
}

// release drops a user; the last one closes the connection.
func (d *Dialer) release(h *host) {
	d.mu.Lock()
	h.mu.Lock()
	h.users--
	last := h.users == 0
	var c *conn
	if last {
		delete(d.hosts, h.key)
		c, h.conn = h.conn, nil
	}
	h.mu.Unlock()
	d.mu.Unlock()
	if last {
		h.cancel() // ends a dial nobody waits for any more
	}
	if c != nil {
		c.close()
	}
}

// controlPath is a short socket path (the limit is ~104 bytes) in a
// private directory.
func (d *Dialer) controlPath(key string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.sockDir == "" {
		dir, err := os.MkdirTemp("", "grd-ssh-")
		if err != nil {
			dir = os.TempDir()
		}
		d.sockDir = dir
	}
	sum := sha256.Sum256([]byte(key + strconv.Itoa(os.Getpid())))
	return filepath.Join(d.sockDir, hex.EncodeToString(sum[:8]))
}

// Close removes the dialer's socket directory.
func (d *Dialer) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.sockDir != "" {
		return os.RemoveAll(d.sockDir)
	}
	return nil
}

func (h *host) opts() []string {
	return []string{"-o", "BatchMode=yes", "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3", "-o", "ConnectTimeout=20"}
}

// connect returns the host's live connection, dialing it if needed; one
// dial, under the host's context, serves every watcher waiting for it,
// and each waits only as long as its own ctx allows.
func (h *host) connect(ctx context.Context) (*conn, error) {
	for {
		h.mu.Lock()
		if c := h.conn; c != nil {
			select {
			case <-c.done:
				h.conn = nil
				go c.close()
			default:
				h.mu.Unlock()
				return c, nil
			}
		}
		dl := h.dialing
		if dl == nil {
			dl = &dialing{done: make(chan struct{})}
			h.dialing = dl
			go h.dialShared(dl)
		}
		h.mu.Unlock()
		select {
		case <-dl.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if dl.err != nil {
			return nil, dl.err
		}
		// Connected: take it from h.conn, unless it already ended.
	}
}

// dialShared dials the host's connection for everyone waiting on dl.
func (h *host) dialShared(dl *dialing) {
	c, err := h.dial(h.ctx)
	h.mu.Lock()
	h.dialing = nil
	if err == nil {
		if h.users > 0 {
			h.conn = c
		} else {
			go c.close()
			err = errors.New("released")
		}
	}
	dl.err = err
	h.mu.Unlock()
	close(dl.done)
}

func (h *host) newID() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.nextID++
	return "w" + strconv.Itoa(h.nextID)
}

// Watch watches the remote repository through the host's connection.
func (w *watcher) Watch(ctx context.Context, fn func(watch.Update) error) error {
	h := w.d.acquire(w)
	defer w.d.release(h)
	c, err := h.connect(ctx)
	if err != nil {
		return err
	}
	w.mu.Lock()
	w.live = c
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.live = nil
		w.mu.Unlock()
	}()
	if c.noCommand != nil {
		return w.poll(ctx, c, fn)
	}
	id := h.newID()
	client := c.client
	sub, err := client.Watch(id, w.target.Path)
	if err != nil {
		return err
	}
	defer func() { client.Unwatch(id) }()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-sub.Events():
			if !ok {
				if err := c.Err(); err != nil {
					return err
				}
				return errors.New("watch ended")
			}
			if tooMany(e.Err) && client.Err() == nil {
				// This session is full: watch in the next one.
				next, err := h.spare(ctx, c, client)
				if err != nil {
					return err
				}
				client = next
				if sub, err = client.Watch(id, w.target.Path); err != nil {
					return err
				}
				continue
			}
			if e.Err != nil {
				if client.Err() != nil { // the connection broke
					if err := c.Err(); err != nil {
						return err // why we ended it (a stall), if we did
					}
					return e.Err
				}
				// The repository is missing or went away: retry slowly.
				return &transport.RetryAfter{After: MissingRetry, Err: fmt.Errorf("%s:%s: %w", w.target.dest(), w.target.Path, e.Err)}
			}
			if err := fn(e.Update); err != nil {
				return err
			}
		}
	}
}

// poll lists the remote's refs over the shared connection at the
// remote's polling interval, for hosts without notify-changes.
func (w *watcher) poll(ctx context.Context, c *conn, fn func(watch.Update) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-c.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	env := w.GitEnv()
	list := func(ctx context.Context) (watch.Refs, error) { return poll.List(ctx, w.env.Dir, w.remote, env) }
	err := poll.Run(ctx, w.every, list, func(u watch.Update) error {
		err := fn(u)
		if u.First {
			w.env.Report.Status(fmt.Sprintf("%v; polling every %s", c.noCommand, w.every))
		}
		return err
	})
	if err == nil && c.Err() != nil {
		select {
		case <-c.done:
			return c.Err()
		default:
		}
	}
	return err
}

// GitEnv is the environment that makes git commands for this remote
// (fetch, push, ls-remote) share the live connection.
func (w *watcher) GitEnv() []string {
	w.mu.Lock()
	c := w.live
	w.mu.Unlock()
	if c == nil || c.ctlPath == "" {
		return nil
	}
	select {
	case <-c.done:
		return nil
	default:
	}
	ordinary := w.cmd.commandLine("-o", "ControlPath="+c.ctlPath, "-o", "ControlMaster=no", "-o", "BatchMode=yes")
	if env := muxEnv(c, ordinary); env != nil {
		return env
	}
	return []string{"GIT_SSH_COMMAND=" + ordinary}
}
