package watch

import "github.com/git-remote-daemon/git-remote-daemon/internal/gitrepo"

// ErrNoRepository is wrapped when a path holds no git repository.
var ErrNoRepository = gitrepo.ErrNoRepository

// FindGitDir resolves a repository path the way git's enter_repo does for
// fetch and push: it expands a leading "~" or "~user", tries "path/.git",
// "path", "path.git/.git" and "path.git", follows a ".git" file (gitdir:
// ...), and returns the absolute common git directory, where the refs
// live: what Watch takes.
func FindGitDir(path string) (string, error) { return gitrepo.FindGitDir(path) }
