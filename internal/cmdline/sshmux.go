package cmdline

import (
	"github.com/urfave/cli/v2"

	"github.com/git-remote-daemon/git-remote-daemon/internal/transport/ssh"
)

// sshMuxCommand is what git runs as its ssh for the daemon's own fetches
// and pushes of an ssh remote whose notify-changes session carries git
// streams (see internal/transport/ssh/mux.go). Hidden: the daemon puts
// it in GIT_SSH_COMMAND itself.
func sshMuxCommand() *cli.Command {
	return &cli.Command{
		Name:            ssh.ShimCommand,
		Hidden:          true,
		SkipFlagParsing: true, // git's ssh options follow ours
		Usage:           "git's ssh for the daemon's fetches: reach the far side over the open notify-changes session",
		Action: func(c *cli.Context) error {
			a, err := ssh.ParseShimArgs(c.Args().Slice())
			if err != nil {
				return cli.Exit("ssh-mux: "+err.Error(), 255)
			}
			if code := ssh.Shim(c.Context, a, c.App.Reader, c.App.Writer, c.App.ErrWriter); code != 0 {
				return cli.Exit("", code)
			}
			return nil
		},
	}
}
