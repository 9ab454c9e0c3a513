package thnode

import (
	"context"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/git-remote-daemon/git-remote-daemon/telehash"
)

// TestInviteLineRoundTrip: the lines of an INVITE connection parse into
// what renders back to the same lines; malformed ones are refused.
func TestInviteLineRoundTrip(t *testing.T) {
	url := thURL(identity(t))
	for _, line := range []string{
		"OK", "OK grd1-abc", "OK carol", "ERR the pairing code expired unused", "ERR a b  c",
		`JOIN {"url":"` + url + `","name":"Carol"}`,
		`JOIN {"url":"` + url + `&udp4=127.0.0.1:9&repo=abc"}`,
	} {
		l, err := parseInviteLine(line)
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if got := l.String(); got != line {
			t.Errorf("%q renders as %q", line, got)
		}
	}
	for _, line := range []string{
		"", "ok", "OK ", "ERR", "ERR ", "JOIN", "JOIN {}", `JOIN {"url":"th::nope"}`, "JOIN [",
		`JOIN {"url":"` + url + `","name":"a\nb"}`, "HELLO", "OK a\rb", "OK " + strings.Repeat("a", maxLocalLine),
	} {
		if l, err := parseInviteLine(line); err == nil {
			t.Errorf("%q parsed as %+v", line, l)
		}
	}
}

// FuzzInviteLine: no line makes the parser panic, and what parses renders
// to a line that parses to the same.
func FuzzInviteLine(f *testing.F) {
	f.Add("OK grd1-abc")
	f.Add("ERR no")
	f.Add(`JOIN {"url":"th::nzf4f6j7ylv53z3m4egrwltv2t2yks4rtpaimeg3avwqsoshqxba?cs3a=hp6yglmmqwcbw5hno37uauh6fn6dx5oj7s5vtapaifrur2jv6zha","name":"c"}`)
	f.Fuzz(func(t *testing.T, line string) {
		l, err := parseInviteLine(line)
		if err != nil {
			return
		}
		again, err := parseInviteLine(l.String())
		if err != nil || !reflect.DeepEqual(l, again) {
			t.Fatalf("%q -> %q -> %+v, %v", line, l.String(), again, err)
		}
	})
}

// holderFunc is an InviteHolder for the refusals below: they must come
// before it is asked.
type holderFunc func(ctx context.Context, n *Node, h HeldInvitation) error

func (f holderFunc) Admit(telehash.Hashname) bool { return false }
func (f holderFunc) ServePair(context.Context, *Node, telehash.Hashname, io.ReadWriter) error {
	return errors.New("no")
}
func (f holderFunc) HoldInvitation(ctx context.Context, n *Node, h HeldInvitation) error {
	return f(ctx, n, h)
}

// TestInviteRefused: the host holds an invitation only for a repository
// registered with its node, and only when its Pairing can hold one; a
// malformed INVITE is refused before anything else.
func TestInviteRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	testRepo(t) // HOME, XDG_RUNTIME_DIR of the test's own
	asked := false
	for _, tc := range []struct {
		name    string
		pairing Pairing
		line    string
		want    string
	}{
		{"no holder", nil, `INVITE {"git_dir":"/r/.git"}`, "cannot hold invitations"},
		{"not registered", holderFunc(func(context.Context, *Node, HeldInvitation) error { asked = true; return nil }),
			`INVITE {"git_dir":"/r/.git","timeout":60}`, "not registered"},
		{"malformed", nil, `INVITE {"git_dir":"/r/.git","timeout":86401}`, "bad request: invitation: timeout 86401"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := Start(ctx, Options{Identity: identity(t), Listen: "127.0.0.1:0", Pairing: tc.pairing})
			if err != nil {
				t.Fatal(err)
			}
			defer n.Close()
			if err := n.ServeLocal(); err != nil {
				t.Fatal(err)
			}
			c, _, _, err := requestLocal(ctx, n.opts.Identity.Hashname(), tc.line)
			if err == nil {
				c.Close()
				t.Fatalf("%s: accepted", tc.line)
			}
			var re *remoteError
			if !errors.As(err, &re) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: %v, want ERR ...%s...", tc.line, err, tc.want)
			}
		})
	}
	if asked {
		t.Error("the holder was asked for an unregistered repository")
	}
}
