// Package poll watches any remote git can reach by listing its refs with
// `git ls-remote` at an interval. It serves remotes that have no
// notification channel of their own (https://, git://, other helpers).
package poll

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/internal/gitcfg"
	"github.com/git-remote-daemon/git-remote-daemon/internal/gitexec"
	"github.com/git-remote-daemon/git-remote-daemon/internal/transport"
	"github.com/git-remote-daemon/git-remote-daemon/watch"
)

// DefaultInterval is the polling period unless
// remote.<name>.daemonPollInterval or remotedaemon.pollInterval say
// otherwise.
const DefaultInterval = time.Minute

// Dialer makes polling watchers.
type Dialer struct{}

var _ transport.Dialer = Dialer{}

// NewWatcher returns a watcher that polls r.
func (Dialer) NewWatcher(r gitcfg.Remote, env transport.Env) (transport.Watcher, error) {
	iv, err := Interval(env.Config, r.Name)
	if err != nil {
		return nil, err
	}
	return &watcher{remote: r.Name, dir: env.Dir, every: iv, env: env}, nil
}

// Interval reads the polling period of a remote: a Go duration ("30s",
// "5m") or a number of seconds.
func Interval(cfg *gitcfg.Config, remote string) (time.Duration, error) {
	for _, key := range []string{"remote." + remote + ".daemonpollinterval", "remotedaemon.pollinterval"} {
		v, ok := cfg.Get(key)
		if !ok {
			continue
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			var secs float64
			if _, serr := fmt.Sscan(v, &secs); serr != nil {
				return 0, fmt.Errorf("%s: bad duration %q", key, v)
			}
			d = time.Duration(secs * float64(time.Second))
		}
		if d < 100*time.Millisecond {
			return 0, fmt.Errorf("%s: %q is below 100ms", key, v)
		}
		return d, nil
	}
	return DefaultInterval, nil
}

type watcher struct {
	remote, dir string
	every       time.Duration
	env         transport.Env
}

func (w *watcher) Watch(ctx context.Context, fn func(watch.Update) error) error {
	list := func(ctx context.Context) (watch.Refs, error) { return List(ctx, w.dir, w.remote, nil) }
	return Run(ctx, w.every, list, func(u watch.Update) error {
		err := fn(u)
		if u.First {
			w.env.Report.Status(fmt.Sprintf("polling every %s", w.every))
		}
		return err
	})
}

// Run lists refs every period and reports like watch.Watch: the refs
// after the first listing, then each change. It returns nil when ctx
// ends, or the listing's or fn's error.
func Run(ctx context.Context, every time.Duration, list func(context.Context) (watch.Refs, error), fn func(watch.Update) error) error {
	refs, err := list(ctx)
	if err != nil {
		return err
	}
	if err := fn(watch.Update{First: true, Refs: refs}); err != nil {
		return err
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		now, err := list(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if changes := watch.Diff(refs, now); len(changes) > 0 {
			refs = now
			if err := fn(watch.Update{Refs: now.Clone(), Changes: changes}); err != nil {
				return err
			}
		}
	}
}

// List runs `git ls-remote --refs <remote>` in dir, which honours the
// remote's whole configuration (insteadOf, uploadpack, credentials, ssh
// command); env is added to git's environment.
func List(ctx context.Context, dir, remote string, env []string) (watch.Refs, error) {
	out, err := gitexec.Output(ctx, dir, env, "ls-remote", "--refs", remote)
	if err != nil {
		return nil, err
	}
	refs := watch.Refs{}
	for _, line := range strings.Split(string(out), "\n") {
		sha, ref, ok := strings.Cut(line, "\t")
		if ok {
			refs[ref] = sha
		}
	}
	return refs, nil
}
