// Package gitrepo finds git repositories and maps refs through refspecs:
// the local repository a daemon runs in (Find, as git rev-parse sees it),
// a repository named by a path the way git's enter_repo resolves it for
// fetch and push (FindGitDir), and a remote's fetch refspecs (Refspec).
package gitrepo

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/git-remote-daemon/git-remote-daemon/internal/gitexec"
)

// Repo is a local repository as git sees it from a directory inside it.
type Repo struct {
	// Dir is where git commands run: the work tree's top, or the git
	// directory of a bare repository.
	Dir string
	// GitDir is the absolute git directory; CommonDir the one shared by
	// all worktrees (where refs, config and the daemon's files live).
	GitDir, CommonDir string
	Bare              bool
}

// Find locates the repository containing dir.
func Find(ctx context.Context, dir string) (Repo, error) {
	out, err := gitexec.Output(ctx, dir, nil, "rev-parse", "--is-bare-repository", "--is-inside-git-dir", "--absolute-git-dir", "--git-common-dir")
	if err != nil {
		return Repo{}, fmt.Errorf("not in a git repository: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 4 {
		return Repo{}, fmt.Errorf("git rev-parse: unexpected output %q", out)
	}
	r := Repo{Bare: lines[0] == "true", GitDir: lines[2], CommonDir: lines[3]}
	insideGitDir := lines[1] == "true"
	if !filepath.IsAbs(r.CommonDir) { // relative to dir
		if r.CommonDir, err = filepath.Abs(filepath.Join(dir, r.CommonDir)); err != nil {
			return Repo{}, err
		}
	}
	if r.Bare || insideGitDir {
		// git runs in a git directory (newer gits refuse --show-toplevel
		// there).
		r.Dir = r.GitDir
		return r, nil
	}
	top, err := gitexec.Output(ctx, dir, nil, "rev-parse", "--show-toplevel")
	if err != nil {
		return Repo{}, err
	}
	r.Dir = strings.TrimSpace(string(top))
	return r, nil
}
