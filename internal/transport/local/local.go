// Package local watches remotes that are paths on this machine (or
// file:// URLs) directly with the watch package: no process and no
// connection in between, so a push is seen within milliseconds.
package local

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/internal/gitcfg"
	"github.com/git-remote-daemon/git-remote-daemon/internal/gitrepo"
	"github.com/git-remote-daemon/git-remote-daemon/internal/transport"
	"github.com/git-remote-daemon/git-remote-daemon/watch"
)

// Dialer makes local watchers sharing one inotify hub.
type Dialer struct {
	// Hub is shared by all local watchers; nil means polling.
	Hub *watch.Hub
	// Poll is the polling period when inotify cannot be used.
	Poll time.Duration
}

var _ transport.Dialer = (*Dialer)(nil)

// MissingRetry is how long to wait before looking again for a repository
// that is not there (an unmounted drive, a deleted directory).
const MissingRetry = 10 * time.Second

// NewWatcher returns a watcher of the repository at r.URL.
func (d *Dialer) NewWatcher(r gitcfg.Remote, env transport.Env) (transport.Watcher, error) {
	path := transport.LocalPath(r.URL)
	if p, err := gitrepo.ExpandHome(path); err == nil {
		path = p
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join(env.Dir, path)
	}
	return &watcher{d: d, path: path, env: env}, nil
}

type watcher struct {
	d    *Dialer
	path string
	env  transport.Env
}

func (w *watcher) Watch(ctx context.Context, fn func(watch.Update) error) error {
	gitDir, err := gitrepo.FindGitDir(w.path)
	if err != nil {
		return &transport.RetryAfter{Err: err, After: MissingRetry}
	}
	opts := watch.Options{Hub: w.d.Hub, Poll: w.d.Poll, Logger: w.env.Logger,
		OnPolling: func(reason error) {
			w.env.Report.Status(fmt.Sprintf("polling every %s: %v", w.d.pollPeriod(), reason))
		}}
	if w.d.Hub == nil {
		w.env.Report.Status(fmt.Sprintf("polling every %s: inotify unavailable", w.d.pollPeriod()))
	}
	err = watch.Watch(ctx, gitDir, opts, fn)
	if errors.Is(err, watch.ErrGone) {
		return &transport.RetryAfter{Err: err, After: MissingRetry}
	}
	return err
}

func (d *Dialer) pollPeriod() time.Duration {
	if d.Poll > 0 {
		return d.Poll
	}
	return time.Second
}
