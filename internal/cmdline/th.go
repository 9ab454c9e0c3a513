package cmdline

import (
	"context"
	"errors"
	"io"
	"os"

	"github.com/git-remote-daemon/git-remote-daemon/helper"
	"github.com/git-remote-daemon/git-remote-daemon/internal/pairing"
	"github.com/git-remote-daemon/git-remote-daemon/internal/thnode"
)

// TH is git-remote-th, the git remote helper for th:: URLs: git runs it
// as `git-remote-th <remote> <address>` and it carries git's pack
// protocol over telehash to the node at the address, whose daemon runs
// the real git upload-pack/receive-pack. It returns the exit status.
func TH(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	run, code, done := startHelper(helperSpec{name: "git-remote-th", usage: thUsage, what: "th address", scheme: "th::",
		parse: func(u string) error { _, err := thnode.ParseAddr(u); return err }}, args, stdout, stderr)
	if done {
		return code
	}
	defer run.stop()
	ctx, cfg, log, fail, remote, idPath := run.ctx, run.cfg, run.log, run.fail, run.remote, run.idPath
	// A remote naming several nodes: the daemon says which one changed.
	addr, url, err := thnode.PickURL(cfg, remote, run.url, os.Getenv(thnode.NodeEnv))
	if err != nil {
		return fail("%v", err)
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
	client := &thnode.Client{Identity: id, IdentityPath: idPath, LinkTimeout: linkTimeout, Logger: log, Routers: routing.Routers,
		Pairing: &pairing.Inviter{Logger: log}} // holds the invitations of daemons registering with it
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
