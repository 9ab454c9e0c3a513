package cmdline

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/git-remote-daemon/git-remote-daemon/internal/background"
	"github.com/git-remote-daemon/git-remote-daemon/internal/daemon"
)

func paths(c *cli.Context) (background.Paths, error) {
	repo, err := daemon.FindRepo(c.Context, dir(c))
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
	pid, err := background.Stop(p, 10*time.Second)
	if errors.Is(err, background.ErrNotRunning) {
		return cli.Exit(err.Error(), 1)
	}
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	fmt.Fprintf(c.App.Writer, "git-remote-daemon stopped (pid %d)\n", pid)
	return nil
}

// statusCmd prints whether the daemon runs and the state of each remote.
// Exit status: 0 running, 3 not running (as `systemctl status`).
func statusCmd(c *cli.Context) error {
	p, err := paths(c)
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	pid, err := background.Running(p)
	if errors.Is(err, background.ErrNotRunning) {
		fmt.Fprintln(c.App.Writer, "git-remote-daemon is not running")
		return cli.Exit("", 3)
	}
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	rep, err := daemon.ReadReport(p.Status)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return cli.Exit(err.Error(), 1)
	}
	state := ""
	if rep.Paused {
		state = ", paused"
	}
	fmt.Fprintf(c.App.Writer, "git-remote-daemon is running (pid %d, since %s%s); log: %s\n",
		pid, rep.Started.Local().Format(time.DateTime), state, p.Log)
	if err := rep.Print(c.App.Writer, time.Now()); err != nil {
		return cli.Exit(err.Error(), 1)
	}
	return nil
}
