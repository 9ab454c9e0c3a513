package cmdline

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/git-remote-daemon/git-remote-daemon/internal/daemon"
	"github.com/git-remote-daemon/git-remote-daemon/internal/gitcfg"
	"github.com/git-remote-daemon/git-remote-daemon/internal/thnode"
	"github.com/git-remote-daemon/git-remote-daemon/internal/transport"
	"github.com/git-remote-daemon/git-remote-daemon/telehash"
	"github.com/git-remote-daemon/git-remote-daemon/watch"
)

// thIdentity loads (creating) the identity a repository uses on
// telehash: the user's, or with remotedaemon.thIdentity=repository its
// own under the git directory.
func thIdentity(cfg *gitcfg.Config, repo *daemon.Repo) (*telehash.Identity, error) {
	path, err := thnode.IdentityPath()
	if err != nil {
		return nil, err
	}
	if repo != nil {
		if v, _ := cfg.Get("remotedaemon.thidentity"); v == "repository" {
			path = filepath.Join(repo.CommonDir, "remote-daemon", "th-id.json")
		} else if v != "" && v != "user" {
			return nil, fmt.Errorf("remotedaemon.thIdentity: %q is neither user nor repository", v)
		}
	}
	return thnode.LoadOrCreate(path)
}

// authorized lists the hashnames named by the repository's th:: remotes,
// read afresh so that a remote added or removed counts at once.
func authorized(ctx context.Context, dir string) map[telehash.Hashname]bool {
	out := map[telehash.Hashname]bool{}
	cfg, err := gitcfg.Read(ctx, dir)
	if err != nil {
		return out
	}
	for _, a := range thRemotes(cfg) {
		out[a.Hashname] = true
	}
	return out
}

// allowList answers "is this peer named in a th:: remote?", reading the
// configuration at most once a second: an unknown peer's handshakes must
// not each cost a git process.
type allowList struct {
	dir  string
	mu   sync.Mutex
	at   time.Time
	list map[telehash.Hashname]bool
}

func (a *allowList) allow(ctx context.Context) func(telehash.Hashname) bool {
	return func(h telehash.Hashname) bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		if time.Since(a.at) > time.Second {
			a.list, a.at = authorized(ctx, a.dir), time.Now()
		}
		return a.list[h]
	}
}

// thRemotes returns the nodes named by the th:: remotes' URLs.
func thRemotes(cfg *gitcfg.Config) []thnode.Addr {
	var out []thnode.Addr
	for _, r := range cfg.Remotes() {
		for _, u := range cfg.GetAll("remote." + r.Name + ".url") {
			u = cfg.RewriteURL(u, false)
			if transport.Classify(u) != transport.TH {
				continue
			}
			if a, err := thnode.ParseAddr(u); err == nil {
				out = append(out, a)
			}
		}
	}
	return out
}

// startTH starts the repository's telehash node when
// remotedaemon.thListen is set (it then serves the repository there) or a
// th:: remote exists (to watch it, on an ephemeral port); nil otherwise.
func startTH(ctx context.Context, repo daemon.Repo, hub *watch.Hub, log *slog.Logger) (*thnode.Node, error) {
	cfg, err := gitcfg.Read(ctx, repo.Dir)
	if err != nil {
		return nil, err
	}
	listen, _ := cfg.Get("remotedaemon.thlisten")
	if listen == "" {
		remotes := thRemotes(cfg)
		if len(remotes) == 0 {
			return nil, nil
		}
		listen = "127.0.0.1:0"
		for _, a := range remotes {
			if thnode.ListenFor(a) != listen {
				listen = "0.0.0.0:0"
			}
		}
	}
	id, err := thIdentity(cfg, &repo)
	if err != nil {
		return nil, err
	}
	node, err := thnode.Start(ctx, thnode.Options{Identity: id, Listen: listen, GitDir: repo.GitDir, Hub: hub, Logger: log,
		Allow: (&allowList{dir: repo.Dir}).allow(ctx)})
	if err != nil {
		return nil, fmt.Errorf("remotedaemon.thListen %s: %w", listen, err)
	}
	if err := node.ServeLocal(ctx); err != nil {
		log.Warn("cannot lend the node to git-remote-th", "err", err)
	}
	log.Info("serving on telehash", "hashname", id.Hashname(), "udp", node.Mesh.Addr())
	return node, nil
}

// addressCmd prints the th:: URLs by which other nodes reach this one.
func addressCmd(c *cli.Context) error {
	ctx := c.Context
	repo, err := daemon.FindRepo(ctx, dir(c))
	var cfg *gitcfg.Config
	var rp *daemon.Repo
	if err == nil {
		if cfg, err = gitcfg.Read(ctx, repo.Dir); err != nil {
			return cli.Exit(err.Error(), 1)
		}
		rp = &repo
	} else if cfg, err = gitcfg.Parse(nil); err != nil {
		return cli.Exit(err.Error(), 1)
	}
	id, err := thIdentity(cfg, rp)
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	a := thnode.Addr{Hashname: id.Hashname(), Keys: id.Keys()}
	listen, _ := cfg.Get("remotedaemon.thlisten")
	if rp == nil || listen == "" {
		if rp != nil {
			fmt.Fprintln(c.App.ErrWriter, "git-remote-daemon: remotedaemon.thListen is not set: others reach this node only once it links to them")
		}
		fmt.Fprintln(c.App.Writer, a)
		return nil
	}
	paths, err := listenPaths(listen)
	if err != nil {
		return cli.Exit(fmt.Sprintf("remotedaemon.thListen: %v", err), 1)
	}
	for _, p := range paths {
		a.Paths = []netip.AddrPort{p}
		fmt.Fprintln(c.App.Writer, a)
	}
	return nil
}

// listenPaths turns a listen address into the paths others use: an
// unspecified host (":4242", "0.0.0.0:4242") means every IPv4 address of
// this machine's interfaces.
func listenPaths(listen string) ([]netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, err
	}
	ap, err := netip.ParseAddrPort(net.JoinHostPort(strings.TrimSpace(orDefault(host, "0.0.0.0")), port))
	if err != nil {
		return nil, err
	}
	if ap.Port() == 0 {
		return nil, fmt.Errorf("%s: a fixed port is needed for others to reach this node", listen)
	}
	if !ap.Addr().IsUnspecified() {
		return []netip.AddrPort{ap}, nil
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	var out []netip.AddrPort
	for _, a := range addrs {
		if pfx, err := netip.ParsePrefix(a.String()); err == nil && pfx.Addr().Is4() {
			out = append(out, netip.AddrPortFrom(pfx.Addr(), ap.Port()))
		}
	}
	return out, nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
