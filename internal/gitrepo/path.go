package gitrepo

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strings"
)

// ErrNoRepository is wrapped when a path holds no git repository.
var ErrNoRepository = errors.New("not a git repository")

// ExpandHome expands a leading "~" or "~user" the way git does for paths
// in URLs and on the far side of ssh.
func ExpandHome(path string) (string, error) {
	if !strings.HasPrefix(path, "~") {
		return path, nil
	}
	name, rest, _ := strings.Cut(path[1:], "/")
	var home string
	if name == "" {
		home = os.Getenv("HOME")
		if home == "" {
			u, err := user.Current()
			if err != nil {
				return "", fmt.Errorf("expand %s: %w", path, err)
			}
			home = u.HomeDir
		}
	} else {
		u, err := user.Lookup(name)
		if err != nil {
			return "", fmt.Errorf("expand %s: %w", path, err)
		}
		home = u.HomeDir
	}
	return filepath.Join(home, rest), nil
}

// FindGitDir resolves a repository path the way git's enter_repo does for
// fetch and push: it tries "path/.git", "path", "path.git/.git" and
// "path.git", follows a ".git" file (gitdir: ...), and returns the
// absolute common git directory, where the refs live.
func FindGitDir(path string) (string, error) {
	p, err := ExpandHome(path)
	if err != nil {
		return "", err
	}
	if p, err = filepath.Abs(p); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	for _, cand := range []string{p + "/.git", p, p + ".git/.git", p + ".git"} {
		fi, err := os.Stat(cand)
		if err != nil {
			continue
		}
		dir := cand
		if !fi.IsDir() {
			if dir, err = readGitFile(cand); err != nil {
				return "", err
			}
		}
		if isGitDir(dir) {
			return commonDir(dir), nil
		}
	}
	return "", fmt.Errorf("%s: %w", path, ErrNoRepository)
}

// IsRepo reports whether dir is a repository as given, without git's
// search: a git directory (a bare repository), or a work tree whose .git
// is a git directory or a gitdir file pointing to one.
func IsRepo(dir string) bool {
	if isGitDir(dir) {
		return true
	}
	dotGit := filepath.Join(dir, ".git")
	fi, err := os.Stat(dotGit)
	if err != nil {
		return false
	}
	if !fi.IsDir() {
		if dotGit, err = readGitFile(dotGit); err != nil {
			return false
		}
	}
	return isGitDir(dotGit)
}

// readGitFile follows a ".git" file of the form "gitdir: <path>".
func readGitFile(file string) (string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", file, err)
	}
	rest, ok := bytes.CutPrefix(bytes.TrimSpace(data), []byte("gitdir: "))
	if !ok {
		return "", fmt.Errorf("%s: %w: not a gitdir file", file, ErrNoRepository)
	}
	dir := string(rest)
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(filepath.Dir(file), dir)
	}
	return filepath.Clean(dir), nil
}

// isGitDir mirrors git's is_git_directory: HEAD, and objects/ and refs/
// in the common directory.
func isGitDir(dir string) bool {
	if fi, err := os.Stat(filepath.Join(dir, "HEAD")); err != nil || fi.IsDir() {
		return false
	}
	for _, sub := range []string{"refs", "objects"} {
		if fi, err := os.Stat(filepath.Join(commonDir(dir), sub)); err != nil || !fi.IsDir() {
			return false
		}
	}
	return true
}

// commonDir returns the directory shared by all worktrees of dir.
func commonDir(dir string) string {
	data, err := os.ReadFile(filepath.Join(dir, "commondir"))
	if err != nil {
		return dir
	}
	c := strings.TrimSpace(string(data))
	if !filepath.IsAbs(c) {
		c = filepath.Join(dir, c)
	}
	return filepath.Clean(c)
}
