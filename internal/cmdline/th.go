package cmdline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/helper"
	"github.com/git-remote-daemon/git-remote-daemon/internal/daemon"
	"github.com/git-remote-daemon/git-remote-daemon/internal/gitcfg"
	"github.com/git-remote-daemon/git-remote-daemon/internal/thnode"
	"github.com/git-remote-daemon/git-remote-daemon/internal/transport/th"
	"github.com/git-remote-daemon/git-remote-daemon/telehash"
)

// TH is git-remote-th, the git remote helper for th:: URLs: git runs it
// as `git-remote-th <remote> <address>` and it carries git's pack
// protocol over telehash to the node at the address, whose daemon runs
// the real git upload-pack/receive-pack. It returns the exit status.
func TH(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "fatal: git-remote-th: "+format+"\n", a...)
		return 128
	}
	if len(args) == 2 { // a user asking, not git
		switch args[1] {
		case "-h", "--help":
			fmt.Fprint(stdout, thUsage)
			return 0
		case "--version":
			fmt.Fprintf(stdout, "git-remote-th version %s\n", Version)
			return 0
		}
	}
	if len(args) != 3 {
		return fail("usage: git-remote-th <remote> <th address> (git runs it for th:: URLs)")
	}
	remote, url := args[1], args[2]
	addr, err := thnode.ParseAddr(url)
	if err != nil {
		return fail("%v", err)
	}
	level := slog.LevelWarn
	if os.Getenv("GIT_REMOTE_DAEMON_DEBUG") != "" {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// git killed outright (no SIGINT): noticed when we are re-parented.
	ctx, cancelParent := helper.WithParent(ctx, 500*time.Millisecond)
	defer cancelParent()

	cfg, err := gitcfg.Read(ctx, ".")
	if err != nil {
		cfg, _ = gitcfg.Parse(nil)
	}
	// A remote naming several nodes: the daemon says which one changed.
	if want := os.Getenv(th.NodeEnv); want != "" && want != string(addr.Hashname) {
		for _, u := range cfg.GetAll("remote." + remote + ".url") {
			if a, err := thnode.ParseAddr(cfg.RewriteURL(u, false)); err == nil && string(a.Hashname) == want {
				addr, url = a, strings.TrimPrefix(cfg.RewriteURL(u, false), thnode.Scheme)
				break
			}
		}
	}
	// The identity: the user's, or the repository's own when git runs us
	// in a repository configured so (remotedaemon.thIdentity).
	var repo *daemon.Repo
	if r, err := daemon.FindRepo(ctx, "."); err == nil {
		repo = &r
	}
	id, err := thIdentity(cfg, repo)
	if err != nil {
		return fail("identity: %v", err)
	}
	// remotedaemon.thLinkTimeout bounds the wait for a node that does
	// not answer (an unauthorized node gets no answer at all).
	var linkTimeout time.Duration
	if v, ok := cfg.Get("remotedaemon.thlinktimeout"); ok {
		if linkTimeout, err = time.ParseDuration(v); err != nil || linkTimeout <= 0 {
			return fail("remotedaemon.thLinkTimeout: bad duration %q", v)
		}
	}
	var node *thnode.Node
	defer func() {
		if node != nil {
			node.Close()
		}
	}()
	err = helper.Run(ctx, helper.Config{
		Stdin: stdin, Stdout: stdout, Stderr: stderr, Remote: remote, URL: url, Logger: log,
		Dial: func(ctx context.Context, req helper.Request) (helper.Conn, error) {
			// A daemon running with our identity lends its node.
			c, err := thnode.DialLocal(ctx, id.Hashname(), addr, thnode.ServiceGit)
			if err == nil {
				return c, nil
			}
			if !errors.Is(err, syscall.ENOENT) && !errors.Is(err, syscall.ECONNREFUSED) {
				return nil, err
			}
			node, err = thnode.Start(ctx, thnode.Options{Identity: id, Listen: thnode.ListenFor(addr), Logger: log,
				LinkTimeout: linkTimeout,
				// We only dial: the node we link to answers on our link.
				Allow: func(h telehash.Hashname) bool { return h == addr.Hashname }})
			if err != nil {
				return nil, err
			}
			return node.Dial(ctx, addr, thnode.ServiceGit)
		},
	})
	var ee *helper.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.Code
	}
	return 128 // helper.Run printed the "fatal:" line
}
