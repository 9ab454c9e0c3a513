package daemon

import (
	"context"

	"github.com/git-remote-daemon/git-remote-daemon/internal/gitrepo"
)

// Repo is the local repository the daemon runs in.
type Repo = gitrepo.Repo

// FindRepo locates the repository containing dir (gitrepo.Find; kept for
// the callers that know the daemon's name for it).
func FindRepo(ctx context.Context, dir string) (Repo, error) { return gitrepo.Find(ctx, dir) }
