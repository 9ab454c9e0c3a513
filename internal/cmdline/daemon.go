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
			"PUSH, RELOAD in) and exits when stdin closes. Configuration is read from git config.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "C", Usage: "run as if started in `DIR`"},
			&cli.BoolFlag{Name: "foreground", Usage: "speak the stdio protocol on stdin/stdout; exit when stdin closes"},
			&cli.BoolFlag{Name: "no-detach", Usage: "run the background daemon in this process without a stdin (for systemd and other service managers)"},
			&cli.BoolFlag{Name: "debug", Usage: "log debug messages to stderr"},
		},
		Action: func(c *cli.Context) error {
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
		Commands: []*cli.Command{
			{Name: "stop", Usage: "stop the background daemon of this repository", Action: stopCmd},
			{Name: "status", Usage: "show the background daemon and each remote's transport, state, last change and last error", Action: statusCmd},
			{
				Name:  "address",
				Usage: "print the th:: URLs by which other nodes reach this one, one per line",
				Description: "Outside a repository: the user identity's URL (hashname and key). Inside one: the\n" +
					"repository's identity with each path it listens on (remotedaemon.thListen).",
				Action: addressCmd,
			},
			{
				Name:      "notify-changes",
				Usage:     "run on the far side of a remote (over ssh): stream the ref changes of repositories to the daemon",
				ArgsUsage: "[PATH...]",
				Description: "Speaks the notify protocol on stdin/stdout (see the notify package): a banner, then READY with\n" +
					"the refs of each watched repository and a line per change. PATHs are resolved as git does\n" +
					"(~, path, path.git, path/.git). Exits when stdin closes or the daemon's heartbeat stops.",
				Flags: []cli.Flag{
					&cli.DurationFlag{Name: "timeout", Value: 30 * time.Second, Usage: "exit when nothing arrived from the daemon for this long"},
				},
				Action: notifyCmd,
			},
		},
		ExitErrHandler: func(c *cli.Context, err error) {},
	}
	if err := app.Run(args); err != nil {
		var ec cli.ExitCoder
		if errors.As(err, &ec) {
			if msg := err.Error(); msg != "" {
				fmt.Fprintln(stderr, "git-remote-daemon:", msg)
			}
			return ec.ExitCode()
		}
		fmt.Fprintln(stderr, "git-remote-daemon:", err)
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
	return slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: level}))
}

// newDaemon wires the daemon with every transport. The telehash node is
// a service the daemon configures at start and after every RELOAD.
func newDaemon(ctx context.Context, c *cli.Context, out daemon.Emitter, statusFile string) (*daemon.Daemon, func(), error) {
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
		transport.Other: poll.Dialer{},
	}
	var node *thnode.Service // set once the repository is known, before Serve configures it
	cleanup := func() {
		if node != nil {
			_ = node.Close()
		}
		_ = sshDialer.Close()
		if hub != nil {
			hub.Close()
		}
	}
	d, err := daemon.New(ctx, daemon.Options{Dir: dir(c), Transports: reg, Hub: hub, Out: out, Logger: log, StatusFile: statusFile,
		Configure: func(ctx context.Context, cfg *gitcfg.Config) error { return node.Configure(ctx, cfg) }})
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	repo := d.Repo()
	node = thnode.NewService(thnode.ServiceOptions{Dir: repo.Dir, GitDir: repo.GitDir, CommonDir: repo.CommonDir, Hub: hub, Logger: log})
	thDialer.Nodes = node
	return d, cleanup, nil
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
	out := stdoutEmitter{w: protocol.NewWriter(c.App.Writer), log: logger(c)}
	d, closeHub, err := newDaemon(ctx, c, out, "")
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	defer closeHub()
	return d.Serve(ctx, daemon.ReadCommands(c.App.Reader, out))
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
	repo, err := daemon.FindRepo(ctx, dir(c))
	if err != nil {
		background.Ready("error: " + err.Error())
		return cli.Exit(err.Error(), 1)
	}
	paths := background.PathsFor(repo.CommonDir)
	lock, err := background.Acquire(paths)
	if err != nil {
		background.Ready("error: " + err.Error())
		return cli.Exit(err.Error(), 1)
	}
	defer lock.Release()
	d, closeHub, err := newDaemon(ctx, c, logEmitter{log}, paths.Status)
	if err != nil {
		background.Ready("error: " + err.Error())
		return cli.Exit(err.Error(), 1)
	}
	defer closeHub()
	cmds := make(chan protocol.Message, 1)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			select {
			case cmds <- protocol.Reload{}:
			default:
			}
		}
	}()
	log.Info("started", "version", Version, "pid", os.Getpid(), "repo", repo.Dir)
	background.Ready("ready")
	err = d.Serve(ctx, cmds)
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
	err = notify.Serve(ctx, c.App.Reader, c.App.Writer, notify.ServerOptions{
		Hub: hub, Timeout: c.Duration("timeout"), Paths: c.Args().Slice(), Logger: log})
	if err != nil {
		return cli.Exit("notify-changes: "+err.Error(), 1)
	}
	return nil
}

// detach starts the background daemon and returns once it is up.
func detach(c *cli.Context) error {
	repo, err := daemon.FindRepo(c.Context, dir(c))
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	paths := background.PathsFor(repo.CommonDir)
	if pid, err := background.Running(paths); err == nil {
		return cli.Exit(fmt.Sprintf("%v (pid %d)", background.ErrRunning, pid), 1)
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
