package daemon

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Repo is the local repository the daemon runs in.
type Repo struct {
	// Dir is where git commands run: the work tree's top, or the git
	// directory of a bare repository.
	Dir string
	// GitDir is the absolute git directory; CommonDir the one shared by
	// all worktrees (where refs, config and the daemon's files live).
	GitDir, CommonDir string
	Bare              bool
}

// FindRepo locates the repository containing dir.
func FindRepo(ctx context.Context, dir string) (Repo, error) {
	out, err := gitOutput(ctx, dir, "rev-parse", "--is-bare-repository", "--absolute-git-dir", "--git-common-dir")
	if err != nil {
		return Repo{}, fmt.Errorf("not in a git repository: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		return Repo{}, fmt.Errorf("git rev-parse: unexpected output %q", out)
	}
	r := Repo{Bare: lines[0] == "true", GitDir: lines[1], CommonDir: lines[2]}
	if !filepath.IsAbs(r.CommonDir) { // relative to dir
		if r.CommonDir, err = filepath.Abs(filepath.Join(dir, r.CommonDir)); err != nil {
			return Repo{}, err
		}
	}
	if r.Bare {
		r.Dir = r.GitDir
		return r, nil
	}
	top, err := gitOutput(ctx, dir, "rev-parse", "--show-toplevel")
	if err != nil {
		return Repo{}, err
	}
	r.Dir = strings.TrimSpace(top)
	if r.Dir == "" { // inside the git directory of a non-bare repository
		r.Dir = r.GitDir
	}
	return r, nil
}

// gitOutput runs git in dir and returns its stdout and, on failure, an
// error carrying its stderr.
func gitOutput(ctx context.Context, dir string, args ...string) (string, error) {
	return gitOutputEnv(ctx, dir, nil, args...)
}

// gitOutputEnv is gitOutput with env added to git's environment.
func gitOutputEnv(ctx context.Context, dir string, env []string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = append(gitEnv(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, lastLines(stderr.String(), 3))
	}
	return string(out), nil
}

// gitEnv is the environment of every git the daemon runs: never prompt,
// there is nobody to answer.
func gitEnv() []string {
	return append(os.Environ(), "GIT_TERMINAL_PROMPT=0")
}

// lastLines keeps the last n non-empty lines of git's stderr, hints
// left out, joined with "; ": what a user needs to see of a failure.
func lastLines(s string, n int) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "hint:") {
			keep = append(keep, l)
		}
	}
	if len(keep) > n {
		keep = keep[len(keep)-n:]
	}
	return strings.Join(keep, "; ")
}
