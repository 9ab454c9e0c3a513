package thnode

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/internal/gitcfg"
	"github.com/git-remote-daemon/git-remote-daemon/telehash"
)

// PickURL chooses, for a remote naming several nodes, the URL of the
// node the daemon asked for (want, from NodeEnv) among the remote's
// URLs; otherwise url as given. It returns the chosen address and URL
// (without "th::").
func PickURL(cfg *gitcfg.Config, remote, url, want string) (Addr, string, error) {
	addr, err := ParseAddr(url)
	if err != nil {
		return Addr{}, "", err
	}
	if want == "" || want == string(addr.Hashname) {
		return addr, url, nil
	}
	for _, u := range cfg.GetAll("remote." + remote + ".url") {
		u = cfg.RewriteURL(u, false)
		if a, err := ParseAddr(u); err == nil && string(a.Hashname) == want {
			return a, strings.TrimPrefix(u, Scheme), nil
		}
	}
	return addr, url, nil
}

// Client is git-remote-th's way to a node's git service: through its
// identity's node, hosted by a daemon or another git-remote-th of the
// same identity when one runs (it lends it on a local socket), else
// through a node of its own, which it hosts (and lends) while it runs.
type Client struct {
	Identity *telehash.Identity
	// IdentityPath is where Identity is kept: the host lock is next to
	// it ("" hosts without one).
	IdentityPath string
	// LinkTimeout bounds a link attempt of its own node (0: default).
	LinkTimeout time.Duration
	Logger      *slog.Logger
	// Attach, if set, is run on the client's own node once started (it
	// gives it an XMPP account for git-remote-xmpp).
	Attach func(ctx context.Context, n *Node) error
	// Alone, if set, says whether an error of the host's node means the
	// client should link by itself instead (the host cannot reach the
	// peer at all: git-remote-xmpp to a node the host's XMPP session does
	// not pin, which the host then never talks to).
	Alone func(error) bool
	// Routers are the routers its own node links to first
	// (remotedaemon.thRouters): a node reached through one of them, by
	// a router= hint in its URL or with its key only, needs them.
	Routers []Addr
	// Pairing, if set, is given to the node the client hosts, so that it
	// can hold invitations for the daemons registering with it
	// (InviteHolder).
	Pairing Pairing

	mu       sync.Mutex
	node     *Node
	lock     *hostLock
	warnOnce sync.Once
}

// hostWait bounds the wait for a host that holds the lock but does not
// open its socket: then the client links alone.
const hostWait = 5 * time.Second

// Dial opens a stream to addr's service. A lending socket that may be
// another user's is not used: Dial warns (once) and links alone.
func (c *Client) Dial(ctx context.Context, addr Addr, service string) (io.ReadWriteCloser, error) {
	deadline := time.Now().Add(hostWait)
	for {
		if node := c.ownedNode(); node != nil {
			return node.Dial(ctx, addr, service)
		}
		s, err := DialLocal(ctx, c.Identity.Hashname(), addr, service)
		switch {
		case err == nil:
			return s, nil
		case errors.Is(err, ErrUntrustedSocket):
			c.warnOnce.Do(func() { c.logger().Warn("not using the daemon's node: " + err.Error() + "; linking alone") })
			return c.alone(ctx, addr, service, nil)
		case errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.ECONNREFUSED):
		case c.Alone != nil && c.Alone(err):
			c.logger().Debug("the host's node cannot reach the peer; linking alone", "err", err)
			return c.alone(ctx, addr, service, nil)
		default:
			return nil, err
		}
		if c.IdentityPath == "" {
			return c.alone(ctx, addr, service, nil)
		}
		lock, lerr := tryHostLock(c.IdentityPath)
		if lerr != nil || lock != nil {
			return c.alone(ctx, addr, service, lock)
		}
		if time.Now().After(deadline) { // a host that does not open its socket
			c.logger().Warn("the process hosting this identity's node does not answer; linking alone")
			return c.alone(ctx, addr, service, nil)
		}
		select { // the host is starting: its socket comes
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(retryHost):
		}
	}
}

func (c *Client) ownedNode() *Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.node
}

func (c *Client) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}

// alone dials through a node of the client's own, started on first
// use; with lock (the host lock, held) it hosts the identity's node,
// lent to the others.
func (c *Client) alone(ctx context.Context, addr Addr, service string, lock *hostLock) (io.ReadWriteCloser, error) {
	c.mu.Lock()
	if c.node == nil {
		// A port of its own, not the last host's: a git-remote-th run
		// is short, and another right after it on the same port would
		// find the peer holding the session of the first.
		paths := addr.Paths
		for _, r := range c.Routers {
			paths = append(paths, r.Paths...)
		}
		node, err := Start(ctx, Options{Identity: c.Identity, Listen: listenFor(paths), Logger: c.logger(),
			LinkTimeout: c.LinkTimeout, Routing: Routing{Routers: c.Routers}, Pairing: c.Pairing,
			// We only dial: the node we link to answers on our link.
			Allow: func(h telehash.Hashname) bool { return h == addr.Hashname }})
		if err != nil {
			c.mu.Unlock()
			if lock != nil {
				lock.release()
			}
			return nil, err
		}
		if c.Attach != nil {
			if err := c.Attach(ctx, node); err != nil {
				c.mu.Unlock()
				_ = node.Close()
				if lock != nil {
					lock.release()
				}
				return nil, err
			}
		}
		c.node, c.lock = node, lock
		if lock != nil {
			if err := node.ServeLocal(); err != nil {
				c.logger().Debug("cannot lend the node", "err", err)
			}
		}
	} else if lock != nil {
		lock.release()
	}
	node := c.node
	c.mu.Unlock()
	return node.Dial(ctx, addr, service)
}

// Close stops the client's own node, if it started one, and lets
// another process host the identity's node.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.node == nil {
		return nil
	}
	err := c.node.Close()
	c.node = nil
	if c.lock != nil {
		c.lock.release()
		c.lock = nil
	}
	return err
}
