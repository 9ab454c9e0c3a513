package helper

import (
	"context"
	"os"
	"time"
)

// WithParent returns a context that is cancelled when the process that
// started this one (git) exits, as seen every interval: the helper is then
// re-parented and os.Getppid changes.
//
// Once connected, the helper cannot take stdin EOF for git's death: git
// closes the helper's stdin as soon as it has sent its last byte (after
// the pack, for a push) and goes on reading the service's reply. A git
// killed outright (SIGKILL, no SIGINT to the process group) is noticed
// when the next write to it fails; WithParent also notices it while the
// far side is silent. main passes the result to Run.
func WithParent(ctx context.Context, interval time.Duration) (context.Context, context.CancelFunc) {
	return watchParent(ctx, interval, os.Getppid)
}

func watchParent(ctx context.Context, interval time.Duration, getppid func() int) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	parent := getppid()
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if getppid() != parent {
					cancel()
					return
				}
			}
		}
	}()
	return ctx, cancel
}
