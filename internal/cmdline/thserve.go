package cmdline

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/git-remote-daemon/git-remote-daemon/internal/daemon"
	"github.com/git-remote-daemon/git-remote-daemon/internal/gitcfg"
	"github.com/git-remote-daemon/git-remote-daemon/internal/thnode"
)

// addressCmd prints the th:: URLs by which other nodes reach this one.
func addressCmd(c *cli.Context) error {
	ctx := c.Context
	repo, err := daemon.FindRepo(ctx, dir(c))
	var cfg *gitcfg.Config
	inRepo := err == nil
	if inRepo {
		if cfg, err = gitcfg.Read(ctx, repo.Dir); err != nil {
			return cli.Exit(err.Error(), 1)
		}
	} else if cfg, err = gitcfg.Parse(nil); err != nil {
		return cli.Exit(err.Error(), 1)
	}
	id, err := thnode.IdentityFor(cfg, repo.CommonDir)
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	// The shortest form: the cs3a key and the digests of long keys.
	a := thnode.Addr{Hashname: id.Hashname(), Keys: id.Keys()}.Short()
	if inRepo {
		// Peers name the repository when the node serves several that
		// allow them (one node per identity, shared by its daemons).
		if a.Repo, err = thnode.RepoID(cfg, repo.CommonDir); err != nil {
			return cli.Exit(err.Error(), 1)
		}
	}
	routing, err := thnode.ParseRouting(cfg)
	if err != nil {
		fmt.Fprintf(c.App.ErrWriter, "git-remote-daemon: %v\n", err)
	}
	// Peers behind other NATs reach this node through its routers.
	for _, r := range routing.Routers {
		a.Routers = append(a.Routers, r.Hashname)
	}
	printXMPPAddress(c, cfg, a) // xmppaddress.go
	listen, _ := cfg.Get("remotedaemon.thlisten")
	if !inRepo || listen == "" {
		switch {
		case inRepo && len(a.Routers) > 0:
			fmt.Fprintln(c.App.ErrWriter, "git-remote-daemon: remotedaemon.thListen is not set: others reach this node through its routers (remotedaemon.thRouters)")
		case inRepo:
			fmt.Fprintln(c.App.ErrWriter, "git-remote-daemon: remotedaemon.thListen is not set: others reach this node only once it links to them")
		}
		fmt.Fprintln(c.App.Writer, a)
		return nil
	}
	paths, err := thnode.ListenPaths(listen)
	if err != nil {
		return cli.Exit(fmt.Sprintf("remotedaemon.thListen: %v", err), 1)
	}
	if thnode.PrivateOnly(paths) && len(routing.Routers) == 0 {
		fmt.Fprintln(c.App.ErrWriter, "git-remote-daemon: this node listens on loopback or private addresses only: "+
			"a peer behind another NAT reaches it only through a router (remotedaemon.thRouters)")
	}
	for _, u := range thnode.AdvertisedAddrs(a, paths) {
		fmt.Fprintln(c.App.Writer, u)
	}
	return nil
}
