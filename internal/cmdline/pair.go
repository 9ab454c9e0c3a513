package cmdline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/git-remote-daemon/git-remote-daemon/internal/background"
	"github.com/git-remote-daemon/git-remote-daemon/internal/control"
	"github.com/git-remote-daemon/git-remote-daemon/internal/daemon"
	"github.com/git-remote-daemon/git-remote-daemon/internal/gitcfg"
	"github.com/git-remote-daemon/git-remote-daemon/internal/gitexec"
	"github.com/git-remote-daemon/git-remote-daemon/internal/pairing"
	"github.com/git-remote-daemon/git-remote-daemon/internal/redact"
	"github.com/git-remote-daemon/git-remote-daemon/internal/thnode"
	"github.com/git-remote-daemon/git-remote-daemon/protocol"
)

// pairCommand is `git-remote-daemon pair invite|join|clone`.
func pairCommand() *cli.Command {
	name := func(usage string) cli.Flag { return &cli.StringFlag{Name: "name", Usage: usage} }
	return &cli.Command{
		Name:  "pair",
		Usage: "pair this repository with another node over th:: with a one-time code (invite, join, clone)",
		Description: "One side runs `pair invite`, which prints a code and waits; the other side runs\n" +
			"`pair join CODE` in its repository (or `pair clone CODE DIR`). Then each side has a remote\n" +
			"naming the other: both may fetch and watch, and a side lets the other push only with\n" +
			"--allow-push. A code is good for one attempt (right or wrong) and expires.",
		Subcommands: []*cli.Command{
			{
				Name:  "invite",
				Usage: "print a one-time pairing code and wait until another node joins with it",
				Description: "The repository must listen on a fixed UDP address (remotedaemon.thListen, or --listen,\n" +
					"which sets it). When a daemon runs in the repository, it holds the invitation;\n" +
					"otherwise this command runs a node until the pairing ends. When another process\n" +
					"(another repository's daemon, or git-remote-th) hosts this identity's node, that\n" +
					"node holds the invitation for this repository, which still adds the remote.",
				Flags: []cli.Flag{
					name("name the joiner's remote `REMOTE` (default: the name it suggests, or th-<hashname prefix>)"),
					&cli.BoolFlag{Name: "allow-push", Usage: "let the joiner push to this repository (remote.<name>.daemonAllowPush)"},
					&cli.DurationFlag{Name: "timeout", Value: pairing.DefaultTimeout, Usage: "how long the code is valid"},
					&cli.StringFlag{Name: "listen", Usage: "set remotedaemon.thListen to `HOST:PORT` first"},
				},
				Action: pairInviteCmd,
			},
			{
				Name:      "join",
				Usage:     "join another node's invitation with its code: each side gets a remote naming the other",
				ArgsUsage: "CODE",
				Flags: []cli.Flag{
					name("name the inviter's remote `REMOTE` (default: the name it suggests, or th-<hashname prefix>)"),
					&cli.BoolFlag{Name: "allow-push", Usage: "let the inviter push to this repository (remote.<name>.daemonAllowPush)"},
				},
				Action: pairJoinCmd,
			},
			{
				Name:      "clone",
				Usage:     "join another node's invitation with its code, then clone its repository into DIR",
				ArgsUsage: "CODE DIR",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "name", Value: "origin", Usage: "name the inviter's remote `REMOTE`"},
					&cli.BoolFlag{Name: "allow-push", Usage: "let the inviter push to the clone (remote.<name>.daemonAllowPush)"},
				},
				Action: pairCloneCmd,
			},
		},
	}
}

// pairContext ends on SIGINT/SIGTERM: an invitation then closes.
func pairContext(c *cli.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
}

func pairInviteCmd(c *cli.Context) error {
	if c.Args().Present() {
		return cli.Exit("pair invite takes no arguments", 2)
	}
	timeout := c.Duration("timeout")
	secs := int((timeout + time.Second - 1) / time.Second)
	if secs <= 0 || secs > protocol.MaxPairTimeout {
		return cli.Exit(fmt.Sprintf("--timeout %s: from 1s to 24h", timeout), 2)
	}
	msg := protocol.Pair{Name: c.String("name"), AllowPush: c.Bool("allow-push"), Timeout: secs}
	return runPair(c, msg, c.String("listen"), func(code protocol.PairCode) {
		fmt.Fprintln(c.App.Writer, code.Code)
		fmt.Fprintf(c.App.ErrWriter, "git-remote-daemon: pairing code above, valid once, for %s. On the other side run:\n"+
			"  git-remote-daemon pair join %s        (in its repository)\n"+
			"  git-remote-daemon pair clone %s DIR   (to clone this one)\n"+
			"waiting for it...\n", timeout, code.Code, code.Code)
	})
}

func pairJoinCmd(c *cli.Context) error {
	if c.NArg() != 1 {
		return cli.Exit("usage: git-remote-daemon pair join [--name REMOTE] [--allow-push] CODE", 2)
	}
	code := c.Args().First()
	if _, err := pairing.ParseCode(code); err != nil {
		return cli.Exit(err.Error(), 1)
	}
	return runPair(c, protocol.PairJoin{Code: code, Name: c.String("name"), AllowPush: c.Bool("allow-push")}, "", nil)
}

// runPair carries out a PAIR or PAIRJOIN in the repository: through its
// daemon when one runs (its node holds the repository's port), else with
// a node of this command's own.
func runPair(c *cli.Context, m protocol.Message, listen string, onCode func(protocol.PairCode)) error {
	ctx, stop := pairContext(c)
	defer stop()
	repo, err := findRepo(ctx, dir(c))
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	paths := background.PathsFor(repo.CommonDir)
	_, runErr := background.Running(paths)
	running := runErr == nil
	if listen != "" {
		if err := setListen(ctx, repo, listen); err != nil {
			return cli.Exit(err.Error(), 1)
		}
		if running {
			if err := control.Send(ctx, paths.Control, protocol.Reload{}); err != nil {
				return cli.Exit(fmt.Sprintf("telling the daemon to reload: %v", err), 1)
			}
		}
	}
	var paired protocol.Paired
	if running {
		paired, err = control.Pair(ctx, paths.Control, m, onCode)
	} else {
		paired, err = pairAlone(ctx, c, repo, m, onCode)
	}
	if err != nil {
		if ctx.Err() != nil {
			return cli.Exit("pairing cancelled", 1)
		}
		return cli.Exit(err.Error(), 1)
	}
	fmt.Fprintf(c.App.Writer, "paired: remote %s names %s\n", paired.Remote, paired.URL)
	if !running {
		fmt.Fprintln(c.App.ErrWriter, "git-remote-daemon: no daemon runs here: start one (git-remote-daemon) to serve and watch the other side")
	}
	return nil
}

// setListen sets remotedaemon.thListen, unless it is set so already.
func setListen(ctx context.Context, repo daemon.Repo, listen string) error {
	cfg, err := gitcfg.Read(ctx, repo.Dir)
	if err != nil {
		return err
	}
	if v, _ := cfg.Get("remotedaemon.thlisten"); v == listen {
		return nil
	}
	if _, err := thnode.ListenPaths(listen); err != nil {
		return fmt.Errorf("--listen %s: %w", listen, err)
	}
	_, err = gitexec.Output(ctx, repo.Dir, nil, "config", "remotedaemon.thListen", listen)
	return err
}

// pairAlone pairs with a node of this process's own, serving the
// repository (to the peers its configuration names) while it runs.
func pairAlone(ctx context.Context, c *cli.Context, repo daemon.Repo, m protocol.Message, onCode func(protocol.PairCode)) (protocol.Paired, error) {
	log := quietLogger(c)
	p := newPairer(log)
	p.repo = repo
	if _, invite := m.(protocol.Pair); invite {
		cfg, err := gitcfg.Read(ctx, repo.Dir)
		if err != nil {
			return protocol.Paired{}, err
		}
		if v, _ := cfg.Get("remotedaemon.thlisten"); v == "" {
			return protocol.Paired{}, errNoListen
		}
		p.service = thnode.NewService(thnode.ServiceOptions{Dir: repo.Dir, GitDir: repo.GitDir, CommonDir: repo.CommonDir,
			Logger: log, Pairing: p.inviter})
		defer p.service.Close()
		if err := p.service.Configure(ctx, cfg); err != nil {
			return protocol.Paired{}, err
		}
	}
	var paired protocol.Paired
	err := p.handle(ctx, m, func(r protocol.Message) error {
		switch r := r.(type) {
		case protocol.PairCode:
			if onCode != nil {
				onCode(r)
			}
		case protocol.Paired:
			paired = r
		}
		return nil
	})
	return paired, err
}

func pairCloneCmd(c *cli.Context) error {
	if c.NArg() != 2 {
		return cli.Exit("usage: git-remote-daemon pair clone [--name REMOTE] [--allow-push] CODE DIR", 2)
	}
	ctx, stop := pairContext(c)
	defer stop()
	codeText, target := c.Args().Get(0), c.Args().Get(1)
	code, err := pairing.ParseCode(codeText)
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	if entries, err := os.ReadDir(target); err == nil && len(entries) > 0 || err != nil && !errors.Is(err, os.ErrNotExist) {
		return cli.Exit(fmt.Sprintf("%s exists and is not an empty directory", target), 1)
	}
	cfg, err := gitcfg.Read(ctx, ".")
	if err != nil {
		cfg, _ = gitcfg.Parse(nil)
	}
	id, err := thnode.IdentityFor(cfg, "") // what git-remote-th uses for the clone
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	timeout, err := thnode.LinkTimeout(cfg)
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	// git clone goes through the node that paired (lent to git-remote-th).
	node := &joinNode{id: id, linkTimeout: timeout, log: quietLogger(c), lend: true}
	defer node.close()
	joined, err := pairing.Join(ctx, node.dial, thnode.Addr{Hashname: id.Hashname(), Keys: id.Keys()}, code, pairing.Suggestion(cfg))
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	url := joined.Inviter.String()
	remote := c.String("name")
	clone := gitexec.Command(ctx, "", "clone", "-o", remote, "--", url, target)
	clone.Stdout, clone.Stderr = c.App.ErrWriter, c.App.ErrWriter
	if err := clone.Run(); err != nil {
		return cli.Exit(fmt.Sprintf("paired with %s, but git clone %s failed (%v): the inviter's daemon must run to serve it; "+
			"clone again with: git clone -o %s '%s' %s", joined.Inviter.Hashname, url, err, remote, url, target), 1)
	}
	if c.Bool("allow-push") {
		if _, err := gitexec.Output(ctx, target, nil, "config", "remote."+remote+".daemonAllowPush", "true"); err != nil {
			return cli.Exit(err.Error(), 1)
		}
	}
	fmt.Fprintf(c.App.Writer, "paired: remote %s names %s\n", remote, url)
	return nil
}

// quietLogger is the log of a command that prints its own outcome:
// warnings only, unless --debug.
func quietLogger(c *cli.Context) *slog.Logger {
	if c.Bool("debug") || os.Getenv("GIT_REMOTE_DAEMON_DEBUG") != "" {
		return logger(c)
	}
	return slog.New(redact.Handler(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: slog.LevelWarn})))
}
