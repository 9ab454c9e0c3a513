package cmdline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/git-remote-daemon/git-remote-daemon/internal/background"
	"github.com/git-remote-daemon/git-remote-daemon/internal/control"
	"github.com/git-remote-daemon/git-remote-daemon/internal/daemon"
)

func paths(c *cli.Context) (background.Paths, error) {
	repo, err := findRepo(c.Context, dir(c))
	if err != nil {
		return background.Paths{}, err
	}
	return background.PathsFor(repo.CommonDir), nil
}

func stopCmd(c *cli.Context) error {
	p, err := paths(c)
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	info, err := background.Stop(c.Context, p, 10*time.Second)
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	fmt.Fprintf(c.App.Writer, "git-remote-daemon stopped (pid %d)\n", info.PID)
	return nil
}

// statusCmd prints whether the daemon runs, in which mode, and the state
// of each remote. Exit status: 0 running, 3 not running (as `systemctl
// status`).
func statusCmd(c *cli.Context) error {
	p, err := paths(c)
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	info, err := background.Running(p)
	if errors.Is(err, background.ErrNotRunning) {
		fmt.Fprintln(c.App.Writer, "git-remote-daemon is not running")
		return cli.Exit("", 3)
	}
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	rep, err := liveReport(c.Context, p)
	if err != nil { // a daemon without a control socket: its status file
		rep, err = daemon.ReadReport(p.Status)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return cli.Exit(err.Error(), 1)
		}
	}
	if rep.PID != info.PID { // none yet, or the last daemon's
		rep = daemon.Report{PID: info.PID}
	}
	if rep.Started.IsZero() { // the daemon wrote its pid as it started
		if fi, err := os.Stat(p.PID); err == nil {
			rep.Started = fi.ModTime()
		}
	}
	fmt.Fprintf(c.App.Writer, "git-remote-daemon is running (%s", info)
	if !rep.Started.IsZero() {
		fmt.Fprintf(c.App.Writer, ", since %s", rep.Started.Local().Format(time.DateTime))
	}
	if rep.Paused {
		fmt.Fprint(c.App.Writer, ", paused")
	}
	fmt.Fprint(c.App.Writer, ")")
	if info.Mode == background.Detached {
		fmt.Fprintf(c.App.Writer, "; log: %s", p.Log)
	}
	fmt.Fprintln(c.App.Writer)
	if len(rep.Remotes) == 0 {
		fmt.Fprintln(c.App.Writer, "no remotes")
		return nil
	}
	if err := rep.Print(c.App.Writer, time.Now()); err != nil {
		return cli.Exit(err.Error(), 1)
	}
	printTH(c.App.Writer, rep.TH)
	return nil
}

// liveAnswer bounds the wait for the daemon's live status: it answers at
// once, unless it is stuck.
const liveAnswer = 2 * time.Second

// liveReport asks the running daemon for its status over its control
// socket: unlike the status file it is right even when the daemon cannot
// write (a full disk).
func liveReport(ctx context.Context, p background.Paths) (daemon.Report, error) {
	ctx, cancel := context.WithTimeout(ctx, liveAnswer)
	defer cancel()
	var rep daemon.Report
	data, err := control.QueryStatus(ctx, p.Control)
	if err != nil {
		return rep, err
	}
	if err := json.Unmarshal(data, &rep); err != nil {
		return rep, fmt.Errorf("live status: %w", err)
	}
	return rep, nil
}
