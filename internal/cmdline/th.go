package cmdline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/helper"
	"github.com/git-remote-daemon/git-remote-daemon/internal/daemon"
	"github.com/git-remote-daemon/git-remote-daemon/internal/gitcfg"
	"github.com/git-remote-daemon/git-remote-daemon/internal/redact"
	"github.com/git-remote-daemon/git-remote-daemon/internal/thnode"
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
	if _, err := thnode.ParseAddr(url); err != nil {
		return fail("%v", err)
	}
	level := slog.LevelWarn
	if os.Getenv("GIT_REMOTE_DAEMON_DEBUG") != "" {
		level = slog.LevelDebug
	}
	log := slog.New(redact.Handler(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})))
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
	addr, url, err := thnode.PickURL(cfg, remote, url, os.Getenv(thnode.NodeEnv))
	if err != nil {
		return fail("%v", err)
	}
	// The identity: the user's, or the repository's own when git runs us
	// in a repository configured so (remotedaemon.thIdentity).
	commonDir := ""
	if r, err := daemon.FindRepo(ctx, "."); err == nil {
		commonDir = r.CommonDir
	}
	idPath, err := thnode.IdentityPathFor(cfg, commonDir)
	if err != nil {
		return fail("identity: %v", err)
	}
	id, err := thnode.LoadOrCreate(idPath)
	if err != nil {
		return fail("identity: %v", err)
	}
	linkTimeout, err := thnode.LinkTimeout(cfg)
	if err != nil {
		return fail("%v", err)
	}
	routing, err := thnode.ParseRouting(cfg)
	if err != nil {
		return fail("%v", err)
	}
	client := &thnode.Client{Identity: id, IdentityPath: idPath, LinkTimeout: linkTimeout, Logger: log, Routers: routing.Routers}
	defer client.Close()
	err = helper.Run(ctx, helper.Config{
		Stdin: stdin, Stdout: stdout, Stderr: stderr, Remote: remote, URL: url, Logger: log,
		Dial: func(ctx context.Context, req helper.Request) (helper.Conn, error) {
			return client.Dial(ctx, addr, thnode.ServiceGit)
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
