package daemon

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/internal/backoff"
)

// staleLockAge is how long a ref lock must have stayed unchanged before
// a failed fetch takes it for one left behind by a killed git (a daemon
// killed with -9 mid-fetch). A live git holds a ref lock for the moment
// it takes to write and rename one small file.
const staleLockAge = 5 * time.Second

// remoteLocks lists the lock files under refs/remotes/<remote>/ of the
// repository whose common git directory is commonDir: the only locks a
// fetch of that remote is allowed to clear.
func remoteLocks(commonDir, remote string) []string {
	base := filepath.Join(commonDir, "refs", "remotes")
	dir := filepath.Join(base, remote)
	if remote == "" || !strings.HasPrefix(dir, base+string(filepath.Separator)) {
		return nil // "..", "." and the like name no remote-tracking directory
	}
	var locks []string
	_ = filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err == nil && e.Type().IsRegular() && strings.HasSuffix(path, ".lock") {
			locks = append(locks, path)
		}
		return nil
	})
	return locks
}

// clearStaleLocks removes those of the remote's ref locks that stay
// unchanged for staleLockAge (waiting, if need be, until the youngest is
// that old) and returns them. It gives up, removing nothing more, when
// ctx ends.
func clearStaleLocks(ctx context.Context, commonDir, remote string) []string {
	var removed []string
	for _, lock := range remoteLocks(commonDir, remote) {
		fi, err := os.Lstat(lock)
		if err != nil {
			continue
		}
		if wait := staleLockAge - time.Since(fi.ModTime()); wait > 0 {
			if !backoff.Sleep(ctx, wait) {
				return removed
			}
		}
		now, err := os.Lstat(lock)
		if err != nil || !now.ModTime().Equal(fi.ModTime()) || now.Size() != fi.Size() || !os.SameFile(fi, now) {
			continue // released or taken again: someone is alive
		}
		if os.Remove(lock) == nil {
			removed = append(removed, lock)
		}
	}
	return removed
}
