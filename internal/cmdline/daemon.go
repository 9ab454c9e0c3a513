// Package cmdline is the command-line interface of git-remote-daemon: it
// parses flags and wires the daemon's parts together. The binaries in
// cmd/ only call it, so tests can run the very same code as commands.
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

	"github.com/urfave/cli/v2"

	"github.com/git-remote-daemon/git-remote-daemon/internal/background"
	"github.com/git-remote-daemon/git-remote-daemon/internal/daemon"
	"github.com/git-remote-daemon/git-remote-daemon/internal/gitcfg"
	"github.com/git-remote-daemon/git-remote-daemon/internal/notify"
	"github.com/git-remote-daemon/git-remote-daemon/internal/redact"
	"github.com/git-remote-daemon/git-remote-daemon/internal/supervise"
	"github.com/git-remote-daemon/git-remote-daemon/internal/thnode"
	"github.com/git-remote-daemon/git-remote-daemon/internal/transport"
	"github.com/git-remote-daemon/git-remote-daemon/internal/transport/local"
	"github.com/git-remote-daemon/git-remote-daemon/internal/transport/poll"
	"github.com/git-remote-daemon/git-remote-daemon/internal/transport/ssh"
	"github.com/git-remote-daemon/git-remote-daemon/internal/transport/th"
	"github.com/git-remote-daemon/git-remote-daemon/protocol"
	"github.com/git-remote-daemon/git-remote-daemon/watch"
)

// Version is printed by --version and in logs.
const Version = "0.1.0"

// Daemon runs git-remote-daemon with args (args[0] is the program name)
// and returns its exit status.
func Daemon(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	app := &cli.App{
		Name:      "git-remote-daemon",
		Usage:     "know within milliseconds that a remote of this repository changed, and act on it",
		Version:   Version,
		Reader:    stdin,
		Writer:    stdout,
		ErrWriter: stderr,
		Description: "Run in a git repository. Without --foreground it detaches and performs each remote's\n" +
			"daemonAction (fetch, pull or none) when the remote changes. With --foreground it speaks\n" +
			"the stdio protocol (CONNECTED, DISCONNECTED, CHANGED, STATUS, ERROR out; PAUSE, RESUME,\n" +
			"PUSH, RELOAD in) and exits when stdin closes. Configuration is read from git config.\n" +
			"One daemon runs per repository, whatever its mode; pause, resume, reload and push reach\n" +
			"it through its control socket.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "C", Usage: "run as if started in `DIR`"},
			&cli.BoolFlag{Name: "foreground", Usage: "speak the stdio protocol on stdin/stdout; exit when stdin closes"},
			&cli.BoolFlag{Name: "no-detach", Usage: "run the background daemon in this process without a stdin (for systemd and other service managers)"},
			&cli.BoolFlag{Name: "debug", Usage: "log debug messages to stderr"},
		},
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return unknownCommand(c)
			}
			switch {
			case c.Bool("foreground") && c.Bool("no-detach"):
				return cli.Exit("--foreground and --no-detach exclude each other", 2)
			case c.Bool("foreground"):
				return runForeground(c)
			case c.Bool("no-detach"):
				return runService(c)
			}
			return detach(c)
		},
		Commands: append(append([]*cli.Command{
			{Name: "status", Usage: "show the daemon (pid, mode, paused) and each remote's transport, state, last change and last error", Action: statusCmd},
			{Name: "stop", Usage: "stop the daemon of this repository, whatever its mode", Action: stopCmd},
		}, controlCommands()...), []*cli.Command{
			{
				Name:  "address",
				Usage: "print the th:: URLs by which other nodes reach this one, one per line",
				Description: "Outside a repository: the user identity's URL (hashname and key). Inside one: the\n" +
					"repository's identity with each path it listens on (remotedaemon.thListen) and the\n" +
					"repository's id (repo=, remotedaemon.thRepo or a random one), which picks it among the\n" +
					"repositories that share the identity's node.",
				Action: addressCmd,
			},
			{
				Name:      "notify-changes",
				Usage:     "run on the far side of a remote (over ssh): stream the ref changes of repositories to the daemon",
				ArgsUsage: "[PATH...]",
				Description: "You do not run this yourself: the daemon runs it on the remote host over ssh, so that\n" +
					"git-remote-daemon must be installed there (on the PATH of a non-interactive ssh session,\n" +
					"or named by remote.<name>.daemonCommand). It watches the repositories it is asked about\n" +
					"and tells the daemon within milliseconds when a ref changes; it exits when the daemon\n" +
					"goes away. PATHs are resolved as git does (~, path, path.git, path/.git). The lines it\n" +
					"speaks are described in the README, section \"The notify protocol (far side of ssh)\".",
				Flags: []cli.Flag{
					&cli.DurationFlag{Name: "timeout", Value: 30 * time.Second, Usage: "exit when nothing arrived from the daemon for this long"},
				},
				Action: notifyCmd,
			},
			sshMuxCommand(),
			pairCommand(),
		}...),
		ExitErrHandler: func(c *cli.Context, err error) {},
	}
	if err := app.Run(args); err != nil {
		var ec cli.ExitCoder
		if errors.As(err, &ec) {
			if msg := err.Error(); msg != "" {
				fmt.Fprintln(stderr, "git-remote-daemon:", redact.String(msg))
			}
			return ec.ExitCode()
		}
		fmt.Fprintln(stderr, "git-remote-daemon:", redact.String(err.Error()))
		return 1
	}
	return 0
}

func dir(c *cli.Context) string {
	if d := c.String("C"); d != "" {
		return d
	}
	return "."
}

func logger(c *cli.Context) *slog.Logger {
	level := slog.LevelInfo
	if c.Bool("debug") || os.Getenv("GIT_REMOTE_DAEMON_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(redact.Handler(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: level})))
}

// newDaemon wires the daemon with every transport. Its long-lived parts
// (the inotify hub, the ssh hosts, the telehash node) are added to sup,
// which closes each when the program stops.
// started, when set, is called once every remote has started.
func newDaemon(ctx context.Context, c *cli.Context, sup *supervise.Supervisor, out daemon.Emitter, statusFile string, started func(), pair *pairer) (*daemon.Daemon, error) {
	log := logger(c)
	hub, err := watch.NewHub(log)
	if err != nil {
		log.Warn("inotify unavailable; local remotes are polled", "err", err)
		hub = nil
	}
	sshDialer := &ssh.Dialer{Logger: log}
	thDialer := &th.Dialer{}
	reg := transport.Registry{
		transport.Local: &local.Dialer{Hub: hub},
		transport.SSH:   sshDialer,
		transport.TH:    thDialer,
		transport.XMPP:  thDialer, // xmpp:: remotes: the same node, XMPP as the path
		transport.Other: poll.Dialer{},
	}
	var node *thnode.Service // set once the repository is known, before Serve configures it
	d, err := daemon.New(ctx, daemon.Options{Dir: dir(c), Transports: reg, Hub: hub, Out: out, Logger: log, StatusFile: statusFile, Supervisor: sup, Started: started,
		Configure: func(ctx context.Context, cfg *gitcfg.Config) error { return node.Configure(ctx, cfg) }})
	if err != nil {
		_ = sshDialer.Close()
		if hub != nil {
			hub.Close()
		}
		return nil, err
	}
	repo := d.Repo()
	node = thnode.NewService(thnode.ServiceOptions{Dir: repo.Dir, GitDir: repo.GitDir, CommonDir: repo.CommonDir, Hub: hub, Logger: log,
		Pairing: pair.inviter})
	pair.service, pair.repo = node, repo
	thDialer.Nodes = node
	if hub != nil {
		sup.Add("inotify hub", closeAtEnd(hub))
	}
	sup.Add("ssh hosts", closeAtEnd(sshDialer))
	sup.Add("telehash node", closeAtEnd(node))
	return d, nil
}

// closeAtEnd is a part that only needs closing when the program stops.
func closeAtEnd(c io.Closer) supervise.Service {
	return supervise.Func(func(ctx context.Context) error {
		<-ctx.Done()
		_ = c.Close()
		return nil
	})
}

// run serves the daemon with its parts under one supervisor until ctx
// ends or the commands end (stdin closed); the parts stop after the
// daemon's runners have.
func run(ctx context.Context, sup *supervise.Supervisor, d *daemon.Daemon, cmds <-chan protocol.Message) error {
	partsCtx, stopParts := context.WithCancel(context.WithoutCancel(ctx))
	parts := make(chan struct{})
	go func() { defer close(parts); _ = sup.Serve(partsCtx) }()
	defer func() { stopParts(); <-parts }()
	return d.Serve(ctx, cmds)
}

// stdoutEmitter writes protocol lines to stdout.
type stdoutEmitter struct {
	w   *protocol.Writer
	log *slog.Logger
}

func (e stdoutEmitter) Emit(m protocol.Message) {
	if err := e.w.Send(m); err != nil {
		e.log.Error("stdout", "err", err)
	}
}

func runForeground(c *cli.Context) error {
	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log := logger(c)
	out := stdoutEmitter{w: protocol.NewWriter(c.App.Writer), log: log}
	p, err := startProgram(ctx, c, background.Foreground, out, nil)
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	defer p.release()
	stdin := p.pair.fromStdin(p.ctx, daemon.ReadCommands(p.ctx, c.App.Reader, out), out)
	p.sup.Add("commands", supervise.Func(func(ctx context.Context) error { p.mux.run(ctx, stdin); return nil }))
	return run(p.ctx, p.sup, p.d, p.mux.out)
}

// program is a daemon holding the repository's lock, with its supervisor
// and command intake (the control socket open).
type program struct {
	ctx  context.Context
	repo daemon.Repo
	sup  *supervise.Supervisor
	mux  *commandMux
	d    *daemon.Daemon
	pair *pairer

	release func()
}

// startProgram takes the one-daemon lock for mode, opens the control
// socket (so a command sent while the daemon starts waits for it rather
// than finding no daemon) and builds the daemon; started is called once
// every remote has started.
func startProgram(ctx context.Context, c *cli.Context, mode background.Mode, out daemon.Emitter, started func()) (*program, error) {
	log := logger(c)
	lock, repo, paths, err := lockRepo(ctx, c, mode)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	p := &program{ctx: ctx, repo: repo, sup: supervise.New(supervise.Options{Logger: log}), mux: newCommandMux(),
		release: func() { cancel(); lock.Release() }}
	p.pair = newPairer(log)
	p.pair.reload = func(ctx context.Context) error { return p.mux.send(ctx, protocol.Reload{}) }
	p.mux.setPair(p.pair)
	addControl(p.sup, paths, repo, p.mux, log)
	if p.d, err = newDaemon(ctx, c, p.sup, out, paths.Status, started, p.pair); err != nil {
		p.release()
		return nil, err
	}
	p.mux.setStatus(p.d.Status)
	return p, nil
}

// lockRepo finds the repository and takes its one-daemon lock for a
// daemon of the given mode.
func lockRepo(ctx context.Context, c *cli.Context, mode background.Mode) (*background.Lock, daemon.Repo, background.Paths, error) {
	repo, err := findRepo(ctx, dir(c))
	if err != nil {
		return nil, repo, background.Paths{}, err
	}
	paths := background.PathsFor(repo.CommonDir)
	lock, err := background.Acquire(paths, mode)
	return lock, repo, paths, err
}

// logEmitter logs protocol messages: the background daemon's record of
// what happened.
type logEmitter struct{ log *slog.Logger }

func (e logEmitter) Emit(m protocol.Message) {
	level := slog.LevelInfo
	if _, ok := m.(protocol.Error); ok {
		level = slog.LevelError
	}
	e.log.Log(context.Background(), level, m.Verb(), "line", m.String())
}

// runService is the background daemon without detaching: single instance,
// pid file, status file, logs to stderr, stdin unused; SIGTERM stops it
// and SIGHUP reloads the configuration.
func runService(c *cli.Context) error {
	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log := logger(c)
	mode := background.NoDetach
	if os.Getenv(background.ReadyFDEnv) != "" { // started by detach
		mode = background.Detached
	}
	// Up once the remotes have started: a `status` right after lists them.
	p, err := startProgram(ctx, c, mode, logEmitter{log}, func() { background.Ready("ready") })
	if err != nil {
		background.Ready("error: " + err.Error())
		return cli.Exit(err.Error(), 1)
	}
	defer p.release()
	sup, mux := p.sup, p.mux
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	sup.Add("commands", supervise.Func(func(ctx context.Context) error { mux.run(ctx, nil); return nil }))
	sup.Add("SIGHUP", supervise.Func(func(ctx context.Context) error {
		for { // SIGHUPs that come while one waits its turn coalesce
			select {
			case <-hup:
				_ = mux.send(ctx, protocol.Reload{})
			case <-ctx.Done():
				return nil
			}
		}
	}))
	log.Info("started", "version", Version, "pid", os.Getpid(), "mode", string(mode), "repo", p.repo.Dir)
	err = run(p.ctx, sup, p.d, mux.out)
	log.Info("stopped")
	return err
}

// notifyCmd is the far side of ssh remotes.
func notifyCmd(c *cli.Context) error {
	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
	defer stop()
	log := logger(c)
	hub, err := watch.NewHub(log)
	if err != nil {
		log.Warn("inotify unavailable; polling", "err", err)
		hub = nil
	} else {
		defer hub.Close()
	}
	maxWatches, err := notify.MaxWatchesFrom(os.Getenv(notify.MaxWatchesEnv))
	if err != nil {
		return cli.Exit("notify-changes: "+err.Error(), 2)
	}
	err = notify.Serve(ctx, c.App.Reader, c.App.Writer, notify.ServerOptions{
		Hub: hub, Timeout: c.Duration("timeout"), Paths: c.Args().Slice(), Logger: log,
		Mux: os.Getenv(ssh.DisableMuxEnv) == "", MaxWatches: maxWatches})
	if err != nil {
		return cli.Exit("notify-changes: "+err.Error(), 1)
	}
	return nil
}

// detach starts the background daemon and returns once it is up.
func detach(c *cli.Context) error {
	repo, err := findRepo(c.Context, dir(c))
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	paths := background.PathsFor(repo.CommonDir)
	if info, err := background.Running(paths); err == nil {
		return cli.Exit((&background.RunningError{Info: info}).Error(), 1)
	}
	exe, err := os.Executable()
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	args := []string{"--no-detach", "-C", repo.Dir}
	if c.Bool("debug") {
		args = append(args, "--debug")
	}
	pid, err := background.Detach(c.Context, paths, exe, os.Args[0], args, repo.Dir)
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	fmt.Fprintf(c.App.Writer, "git-remote-daemon started (pid %d); log: %s\n", pid, paths.Log)
	return nil
}
