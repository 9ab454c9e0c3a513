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

// Client is git-remote-th's way to a node's git service: through the
// node of a daemon running with the same identity when there is one
// (it lends it on a local socket), else through a node of its own.
type Client struct {
	Identity *telehash.Identity
	// LinkTimeout bounds a link attempt of its own node (0: default).
	LinkTimeout time.Duration
	Logger      *slog.Logger

	mu       sync.Mutex
	node     *Node
	warnOnce sync.Once
}

// Dial opens a stream to addr's service. A lending socket that may be
// another user's is not used: Dial warns (once) and links alone.
func (c *Client) Dial(ctx context.Context, addr Addr, service string) (io.ReadWriteCloser, error) {
	s, err := DialLocal(ctx, c.Identity.Hashname(), addr, service)
	switch {
	case err == nil:
		return s, nil
	case errors.Is(err, ErrUntrustedSocket):
		c.warnOnce.Do(func() { c.logger().Warn("not using the daemon's node: " + err.Error() + "; linking alone") })
	case errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.ECONNREFUSED):
	default:
		return nil, err
	}
	node, err := c.ownNode(ctx, addr)
	if err != nil {
		return nil, err
	}
	return node.Dial(ctx, addr, service)
}

func (c *Client) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}

// ownNode starts the client's node on first use.
func (c *Client) ownNode(ctx context.Context, addr Addr) (*Node, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.node == nil {
		node, err := Start(ctx, Options{Identity: c.Identity, Listen: ListenFor(addr), Logger: c.logger(),
			LinkTimeout: c.LinkTimeout,
			// We only dial: the node we link to answers on our link.
			Allow: func(h telehash.Hashname) bool { return h == addr.Hashname }})
		if err != nil {
			return nil, err
		}
		c.node = node
	}
	return c.node, nil
}

// Close stops the client's own node, if it started one.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.node == nil {
		return nil
	}
	err := c.node.Close()
	c.node = nil
	return err
}
