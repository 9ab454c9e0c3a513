package notify

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrNoAnswer is wrapped by Keepalive's error when the far side went
// silent: a stalled server, a dead network, a vanished peer.
var ErrNoAnswer = errors.New("no answer")

// Keepalive pings the far side every `every` and gives up on it once
// nothing at all (no PONG, no change) arrived for deadAfter. It returns
// nil when ctx ends, the stream's error when the stream ended, and an
// error wrapping ErrNoAnswer when the far side went silent. It is the
// one keepalive loop of the ssh and th:: transports.
func (c *Client) Keepalive(ctx context.Context, every, deadAfter time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-c.Done():
			if err := c.Err(); err != nil {
				return err
			}
			return errors.New("notify: stream ended")
		case <-t.C:
			if silent := time.Since(c.LastReceived()); silent > deadAfter {
				return fmt.Errorf("%w for %s", ErrNoAnswer, silent.Round(time.Second))
			}
			if err := c.Ping(); err != nil {
				return err
			}
		}
	}
}
