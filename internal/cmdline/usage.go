package cmdline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/git-remote-daemon/git-remote-daemon/internal/daemon"
)

// unknownCommand is the error for a word that names no command: the
// daemon itself takes no arguments, so `git-remote-daemon stauts` must
// not start it.
func unknownCommand(c *cli.Context) error {
	word := c.Args().First()
	var names []string
	for _, cmd := range c.App.VisibleCommands() {
		if cmd.Name != "help" {
			names = append(names, cmd.Name)
		}
	}
	msg := fmt.Sprintf("%q is not a command", word)
	if strings.HasPrefix(word, "-") {
		msg = fmt.Sprintf("%q: flags go before the command", word)
	}
	if best := closest(word, names); best != "" {
		msg += fmt.Sprintf("; did you mean %s?", best)
	}
	msg += "\ncommands: " + strings.Join(names, ", ") + " (without one: start the daemon; see --help)"
	return cli.Exit(msg, 2)
}

// closest returns the name nearest to word, if it is near enough to be
// a typo of it (an edit distance of at most a third of its length, at
// least 1), or a name word begins.
func closest(word string, names []string) string {
	best, bestD := "", 0
	for _, n := range names {
		if d := distance(strings.ToLower(word), n); best == "" || d < bestD {
			best, bestD = n, d
		}
	}
	if best != "" && bestD <= max(1, len(best)/3) {
		return best
	}
	for _, n := range names {
		if len(word) >= 2 && strings.HasPrefix(n, strings.ToLower(word)) {
			return n
		}
	}
	return ""
}

// distance is the optimal string alignment distance of a and b: the
// edits (insert, delete, replace, swap of neighbours) from one to the
// other, so that "stauts" is one edit from "status".
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

// errNotRepo is wrapped when the directory is in no git repository.
var errNotRepo = errors.New("not in a git repository")

// findRepo finds the repository around dir, saying in plain words what
// is wrong with dir when it is none: git's own words are kept for
// failures of another kind.
func findRepo(ctx context.Context, dir string) (daemon.Repo, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return daemon.Repo{}, fmt.Errorf("cannot use directory %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return daemon.Repo{}, fmt.Errorf("cannot use directory %s: not a directory", dir)
	}
	repo, err := daemon.FindRepo(ctx, dir)
	if err == nil {
		return repo, nil
	}
	if errors.Is(err, exec.ErrNotFound) || !strings.Contains(err.Error(), "not a git repository") {
		return daemon.Repo{}, trimmedError{err}
	}
	abs, aerr := filepath.Abs(dir)
	if aerr != nil {
		abs = dir
	}
	return daemon.Repo{}, fmt.Errorf("%w: %s (nor any of its parents); run it inside one, or give -C DIR", errNotRepo, abs)
}

// trimmedError drops the ": " git's empty stderr leaves at the end.
type trimmedError struct{ err error }

func (e trimmedError) Error() string { return strings.TrimRight(e.err.Error(), ": ") }
func (e trimmedError) Unwrap() error { return e.err }

// thUsage is what `git-remote-th --help` prints.
const thUsage = `usage: git-remote-th <remote> <th address>

The git remote helper for th:: URLs: git runs it for ` + "`git clone th::...`" + `, git fetch and
git push; you do not run it yourself. It carries git's pack protocol over telehash
to the node at the address (its daemon serves the repository). See the README,
section "th:: remotes (telehash)".
`
