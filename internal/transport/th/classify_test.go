package th

import (
	"errors"
	"fmt"
	"testing"

	"github.com/git-remote-daemon/git-remote-daemon/internal/notify"
	"github.com/git-remote-daemon/git-remote-daemon/internal/transport"
	"github.com/git-remote-daemon/git-remote-daemon/telehash"
)

// The passing states of a peer are transport.Transient, whatever wraps
// them; what the user must act on is not.
func TestClassify(t *testing.T) {
	banner := func(err error) error {
		return fmt.Errorf("hn: %w before the stream ended (%w); it said: %q", notify.ErrNoBanner, err, "")
	}
	for _, c := range []struct {
		err     error
		waiting string
	}{
		{banner(&telehash.ChannelError{Msg: "this node serves no repository"}), "the peer's daemon is not running"},
		{banner(telehash.ErrSessionReset), "the peer restarted"},
		{banner(telehash.ErrChannelTimeout), "the peer does not answer"},
		{&telehash.ChannelError{Msg: "node stopped"}, "the peer's daemon stopped"},
		{fmt.Errorf("hn: %w for 10s", errNoAnswer), "the peer does not answer"},
		{fmt.Errorf("link to hn: %w", telehash.ErrLinkTimeout), "the peer does not answer"},
		{&telehash.ChannelError{Msg: "not authorized"}, ""},
		{errors.New("notify-changes speaks version 2, this daemon 1"), ""},
	} {
		err := classify(c.err)
		var tr *transport.Transient
		if got := errors.As(err, &tr); got != (c.waiting != "") || got && tr.Waiting != c.waiting {
			t.Errorf("classify(%v) = %#v, want waiting %q", c.err, err, c.waiting)
		}
		if err.Error() != c.err.Error() {
			t.Errorf("classify changed the text: %q", err)
		}
	}
}
