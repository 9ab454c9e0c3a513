package cmdline

import (
	"context"
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

// helperRun is what git-remote-th and git-remote-xmpp set up alike
// before they reach a node: the remote and URL git gave, a logger,
// a context that ends with git, the configuration and the identity file.
type helperRun struct {
	remote, url string
	log         *slog.Logger
	ctx         context.Context
	cfg         *gitcfg.Config
	idPath      string
	// fail prints a fatal error and returns git's exit status for it.
	fail func(format string, a ...any) int
	stop func()
}

// helperSpec names a remote helper and how it checks its URL.
type helperSpec struct {
	name, usage, what string // "git-remote-th", its --help, "th address"
	scheme            string // "th::"
	parse             func(url string) error
}

// startHelper handles --help, --version and usage, checks the URL and
// sets up the run. done is set with the exit status when nothing more
// is to be done; otherwise the caller defers run.stop().
func startHelper(spec helperSpec, args []string, stdout, stderr io.Writer) (run *helperRun, code int, done bool) {
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "fatal: "+spec.name+": "+format+"\n", a...)
		return 128
	}
	if len(args) == 2 { // a user asking, not git
		switch args[1] {
		case "-h", "--help":
			fmt.Fprint(stdout, spec.usage)
			return nil, 0, true
		case "--version":
			fmt.Fprintf(stdout, "%s version %s\n", spec.name, Version)
			return nil, 0, true
		}
	}
	if len(args) != 3 {
		return nil, fail("usage: %s <remote> <%s> (git runs it for %s URLs)", spec.name, spec.what, spec.scheme), true
	}
	r := &helperRun{remote: args[1], url: args[2], fail: fail}
	if err := spec.parse(r.url); err != nil {
		return nil, fail("%v", err), true
	}
	level := slog.LevelWarn
	if os.Getenv("GIT_REMOTE_DAEMON_DEBUG") != "" {
		level = slog.LevelDebug
	}
	r.log = slog.New(redact.Handler(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})))
	ctx, stopSignals := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	// git killed outright (no SIGINT): noticed when we are re-parented.
	ctx, cancelParent := helper.WithParent(ctx, 500*time.Millisecond)
	r.ctx, r.stop = ctx, func() { cancelParent(); stopSignals() }
	cfg, err := gitcfg.Read(ctx, ".")
	if err != nil {
		cfg, _ = gitcfg.Parse(nil)
	}
	r.cfg = cfg
	// The identity: the user's, or the repository's own when git runs us
	// in a repository configured so (remotedaemon.thIdentity).
	commonDir := ""
	if repo, err := daemon.FindRepo(ctx, "."); err == nil {
		commonDir = repo.CommonDir
	}
	if r.idPath, err = thnode.IdentityPathFor(cfg, commonDir); err != nil {
		code := fail("identity: %v", err)
		r.stop()
		return nil, code, true
	}
	return r, 0, false
}
