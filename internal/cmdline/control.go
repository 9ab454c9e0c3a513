package cmdline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/git-remote-daemon/git-remote-daemon/internal/background"
	"github.com/git-remote-daemon/git-remote-daemon/internal/control"
	"github.com/git-remote-daemon/git-remote-daemon/internal/daemon"
	"github.com/git-remote-daemon/git-remote-daemon/internal/gitcfg"
	"github.com/git-remote-daemon/git-remote-daemon/internal/supervise"
	"github.com/git-remote-daemon/git-remote-daemon/protocol"
)

// commandMux merges the commands of every source (stdin, the control
// socket, SIGHUP) into the one channel the daemon's Serve loop reads.
// Out is unbuffered: a command handed over has been taken by the loop,
// and every command before it has been carried out.
type commandMux struct {
	out     chan protocol.Message
	in      chan protocol.Message
	stopped chan struct{}
	// status is the running daemon's live status, once it runs.
	status atomic.Pointer[func() daemon.Report]
	// pair carries out PAIR and PAIRJOIN, once the daemon runs.
	pair atomic.Pointer[pairer]
}

func (x *commandMux) setPair(p *pairer) { x.pair.Store(p) }

// setStatus makes fn the daemon's live status, answered on the control
// socket (`git-remote-daemon status` asks it).
func (x *commandMux) setStatus(fn func() daemon.Report) { x.status.Store(&fn) }

// report returns the live status; ok is false before the daemon runs.
func (x *commandMux) report() (daemon.Report, bool) {
	fn := x.status.Load()
	if fn == nil {
		return daemon.Report{}, false
	}
	return (*fn)(), true
}

func newCommandMux() *commandMux {
	return &commandMux{out: make(chan protocol.Message), in: make(chan protocol.Message),
		stopped: make(chan struct{})}
}

// errStopping is answered to commands that come while the daemon stops.
var errStopping = errors.New("the daemon is stopping")

// run forwards commands until ctx ends or stdin (nil: none) is closed,
// then closes out, which ends Serve.
func (x *commandMux) run(ctx context.Context, stdin <-chan protocol.Message) {
	defer close(x.out)
	defer close(x.stopped)
	for {
		var m protocol.Message
		select {
		case <-ctx.Done():
			return
		case c, ok := <-stdin:
			if !ok {
				return
			}
			m = c
		case m = <-x.in:
		}
		select {
		case x.out <- m:
		case <-ctx.Done():
			return
		}
	}
}

// send hands m to the Serve loop and returns once the loop took it.
func (x *commandMux) send(ctx context.Context, m protocol.Message) error {
	select {
	case x.in <- m:
	case <-x.stopped:
		return errStopping
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// controlHandler carries out the commands of the control socket: it
// checks that a PUSH names a remote of the repository, hands the command
// to the daemon, and for PAUSE and RESUME waits until the status file
// says the daemon is (no longer) paused, so that `git-remote-daemon
// pause && git commit` does not push that commit.
func controlHandler(repo daemon.Repo, statusFile string, mux *commandMux) control.Handler {
	return func(ctx context.Context, m protocol.Message) error {
		if p, ok := m.(protocol.Push); ok {
			if err := checkPushable(ctx, repo, p.Remote); err != nil {
				return err
			}
		}
		if err := mux.send(ctx, m); err != nil {
			if ctx.Err() != nil {
				return errStopping
			}
			return err
		}
		switch m.(type) {
		case protocol.Pause:
			return waitPaused(ctx, mux, statusFile, true)
		case protocol.Resume:
			return waitPaused(ctx, mux, statusFile, false)
		}
		return nil
	}
}

// checkPushable refuses a push the daemon would refuse: no such remote,
// or one whose configuration is invalid.
func checkPushable(ctx context.Context, repo daemon.Repo, remote string) error {
	if remote == protocol.Daemon {
		return daemon.ErrPushDaemon
	}
	cfg, err := gitcfg.Read(ctx, repo.Dir)
	if err != nil {
		return fmt.Errorf("PUSH: %w", err)
	}
	for _, rc := range cfg.Remotes() {
		if rc.Name == remote {
			if rc.Err != nil {
				return fmt.Errorf("PUSH: %w", rc.Err)
			}
			return nil
		}
	}
	return errors.New("PUSH: no such remote")
}

// pausedConfirm bounds the wait for the status file to show a PAUSE or
// RESUME: the daemon took the command, so it is only a matter of it
// writing the file, which may fail (a full disk) without the command
// failing.
const pausedConfirm = 5 * time.Second

func waitPaused(ctx context.Context, mux *commandMux, statusFile string, want bool) error {
	ctx, cancel := context.WithTimeout(ctx, pausedConfirm)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if rep, ok := mux.report(); ok && rep.Paused == want {
			return nil
		}
		if rep, err := daemon.ReadReport(statusFile); err == nil && rep.Paused == want {
			return nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return nil // taken all the same; `status` tells the rest
		}
	}
}

// addControl opens the control socket of a daemon holding the lock and
// adds its server to sup, which serves it until the program stops. A
// socket that cannot be opened is logged: the daemon runs without it.
func addControl(sup *supervise.Supervisor, paths background.Paths, repo daemon.Repo, mux *commandMux, log *slog.Logger) {
	open := func() (*control.Server, error) {
		srv, err := control.Listen(paths.Control, log)
		if err != nil {
			return nil, err
		}
		srv.SetStatus(func() ([]byte, error) {
			rep, ok := mux.report()
			if !ok {
				return nil, errors.New("the daemon is starting: no status yet")
			}
			if p := mux.pair.Load(); p != nil {
				rep.TH = thStatus(p.service, rep.Remotes)
			}
			return json.Marshal(rep)
		})
		srv.SetPair(func(ctx context.Context, m protocol.Message, reply func(protocol.Message) error) error {
			p := mux.pair.Load()
			if p == nil || p.service == nil {
				return errors.New("the daemon is starting")
			}
			return p.handle(ctx, m, reply)
		})
		return srv, nil
	}
	first, err := open() // now, so that a command sent while the daemon starts waits
	if err != nil {
		log.Warn("no control socket: `git-remote-daemon pause|resume|reload|push` will not reach this daemon", "err", err)
		return
	}
	sup.Add("control socket", supervise.Func(func(ctx context.Context) error {
		srv := first
		first = nil
		if srv == nil { // restarted after a failure: open it again
			var err error
			if srv, err = open(); err != nil {
				return err
			}
		}
		defer srv.Close()
		return srv.Serve(ctx, controlHandler(repo, paths.Status, mux))
	}))
}

// controlVerbs are the commands that reach a running daemon; push takes
// remote names.
var controlVerbs = map[string]struct {
	usage, done string
	msg         protocol.Message
}{
	"pause":  {"close every connection and act on nothing until resume", "paused", protocol.Pause{}},
	"resume": {"connect again, and catch up with what changed while paused", "resumed", protocol.Resume{}},
	"reload": {"re-read the configuration (as SIGHUP does)", "reloading its configuration", protocol.Reload{}},
}

func controlCommands() []*cli.Command {
	var cmds []*cli.Command
	for _, name := range []string{"pause", "resume", "reload"} {
		v := controlVerbs[name]
		cmds = append(cmds, &cli.Command{Name: name, Usage: "tell the running daemon to " + v.usage,
			Action: func(c *cli.Context) error { return controlCmd(c, v.done, v.msg) }})
	}
	cmds = append(cmds, &cli.Command{
		Name:      "push",
		Usage:     "tell the running daemon to push now, to each REMOTE or else to every remote with daemonPush",
		ArgsUsage: "[REMOTE...]",
		Description: "The daemon pushes as it does for daemonPush (the remote's push refspecs, or every branch\n" +
			"and tag); the outcome shows in `git-remote-daemon status` and the log. A paused daemon\n" +
			"pushes when resumed.",
		Action: pushCmd,
	})
	return cmds
}

// controlCmd sends msgs to the repository's running daemon. Exit status:
// 0 taken, 1 refused or unreachable, 3 no daemon runs.
func controlCmd(c *cli.Context, done string, msgs ...protocol.Message) error {
	if c.Args().Present() {
		return cli.Exit(fmt.Sprintf("%s takes no arguments", c.Command.Name), 2)
	}
	p, err := paths(c)
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	return sendControl(c, p, done, msgs...)
}

// answerWithin bounds the wait for the daemon to take a command: it
// takes one when done with the one before (a PAUSE waits for running
// fetches to stop).
const answerWithin = time.Minute

func sendControl(c *cli.Context, p background.Paths, done string, msgs ...protocol.Message) error {
	info, err := background.Running(p)
	if errors.Is(err, background.ErrNotRunning) {
		return cli.Exit(err.Error(), 3)
	}
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	ctx, cancel := context.WithTimeout(c.Context, answerWithin)
	defer cancel()
	if err := control.Send(ctx, p.Control, msgs...); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return cli.Exit(fmt.Sprintf("the daemon (%s) did not answer within %s: it may be busy (see git-remote-daemon status and its log)", info, answerWithin), 1)
		}
		if errors.Is(err, control.ErrNoDaemon) {
			return cli.Exit(fmt.Sprintf("the daemon (%s) does not answer on its control socket: %v", info, err), 1)
		}
		return cli.Exit(err.Error(), 1)
	}
	fmt.Fprintf(c.App.Writer, "git-remote-daemon %s (%s)\n", done, info)
	if _, push := msgs[0].(protocol.Push); push {
		if rep, err := daemon.ReadReport(p.Status); err == nil && rep.PID == info.PID && rep.Paused {
			fmt.Fprintln(c.App.Writer, "it is paused: it pushes when resumed (git-remote-daemon resume)")
		}
	}
	return nil
}

// pushCmd asks for a push to the named remotes or, with none named, to
// every remote with remote.<name>.daemonPush: the remotes the daemon
// pushes to by itself, never one the user only fetches from.
func pushCmd(c *cli.Context) error {
	p, err := paths(c)
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	remotes := c.Args().Slice()
	if len(remotes) == 0 {
		repo, err := findRepo(c.Context, dir(c))
		if err != nil {
			return cli.Exit(err.Error(), 1)
		}
		cfg, err := gitcfg.Read(c.Context, repo.Dir)
		if err != nil {
			return cli.Exit(err.Error(), 1)
		}
		for _, rc := range cfg.Remotes() {
			if rc.Push && rc.Err == nil {
				remotes = append(remotes, rc.Name)
			}
		}
		if len(remotes) == 0 {
			return cli.Exit("no remote has remote.<name>.daemonPush set: name the remotes to push to (git-remote-daemon push REMOTE...)", 1)
		}
	}
	var msgs []protocol.Message
	for _, r := range remotes {
		msgs = append(msgs, protocol.Push{Remote: r})
	}
	return sendControl(c, p, "pushing to "+strings.Join(remotes, ", "), msgs...)
}
