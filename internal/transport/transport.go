// Package transport defines how the daemon watches a remote's refs, and
// classifies remote URLs the way git does. Each transport (local, poll,
// later ssh, th, xmpp) lives in a package of its own and is registered by
// main in a Registry.
package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/internal/gitcfg"
	"github.com/git-remote-daemon/git-remote-daemon/watch"
)

// Kind names a transport.
type Kind string

// The kinds of remote URL.
const (
	Local Kind = "local" // a path or file:// URL
	SSH   Kind = "ssh"   // ssh://, git+ssh://, ssh+git://, scp-like user@host:path
	TH    Kind = "th"    // th::<address> (telehash)
	XMPP  Kind = "xmpp"  // xmpp::<address>
	Other Kind = "other" // anything else git can fetch (https://, git://, helpers)
)

// Classify tells which kind of transport a (rewritten) remote URL needs,
// following git's own rules (transport.c, connect.c).
func Classify(url string) Kind {
	if scheme, _, ok := strings.Cut(url, "::"); ok && isScheme(scheme) {
		switch scheme {
		case "th":
			return TH
		case "xmpp":
			return XMPP
		case "file":
			return Local
		}
		return Other
	}
	if scheme, _, ok := strings.Cut(url, "://"); ok && isScheme(scheme) {
		switch scheme {
		case "file":
			return Local
		case "ssh", "git+ssh", "ssh+git":
			return SSH
		}
		return Other
	}
	// scp-like syntax: a colon before any slash (connect.c,
	// url_is_local_not_ssh). A bracketed host may hold colons.
	colon := strings.IndexByte(url, ':')
	if strings.HasPrefix(url, "[") {
		if end := strings.Index(url, "]:"); end > 0 {
			colon = end + 1
		}
	}
	slash := strings.IndexByte(url, '/')
	if colon > 0 && (slash < 0 || colon < slash) {
		return SSH
	}
	return Local
}

func isScheme(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '+' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}

// LocalPath returns the filesystem path of a local URL.
func LocalPath(url string) string {
	if p, ok := strings.CutPrefix(url, "file://"); ok {
		return p
	}
	return url
}

// Reporter receives what a watcher has to tell its user besides refs.
type Reporter interface {
	// Status reports a user-visible status text (e.g. "polling").
	Status(text string)
}

// Watcher watches one remote.
type Watcher interface {
	// Watch connects to the remote and calls fn with its complete refs
	// once connected, then after every change (see watch.Update). It
	// returns nil when ctx ends, fn's error if fn fails, and otherwise an
	// error saying why the connection was lost or could not be made.
	Watch(ctx context.Context, fn func(watch.Update) error) error
}

// GitEnver is implemented by watchers whose connection the git commands
// run for the remote (fetch, push) can share; GitEnv returns the
// environment to add to them, or nil. Asked while Watch's fn is handling
// an update, it returns the environment that reaches the refs of that
// update (for a remote with several nodes: the node that reported it);
// the daemon keeps it with the change, and fetches with it however late
// the fetch runs.
type GitEnver interface {
	GitEnv() []string
}

// Joiner is implemented by watchers of a remote with several nodes:
// Joined is signalled when a node comes (back) while the remote stays
// connected through another, so that what failed for want of it (a push
// to every URL of the remote) is tried again at once.
type Joiner interface {
	Joined() <-chan struct{}
}

// PushEnver is implemented by GitEnvers whose GitEnv is for fetches
// only: PushEnv returns the environment to add to a push instead. A
// remote with several nodes fetches from the node that reported the
// change, while git pushes to every URL of the remote.
type PushEnver interface {
	PushEnv() []string
}

// Env is what a transport may use to build a watcher.
type Env struct {
	// Dir is the local repository's top directory (work tree, or git
	// directory of a bare repository); relative URLs are relative to it.
	Dir string
	// Config is the local repository's configuration.
	Config *gitcfg.Config
	// Report receives status texts.
	Report Reporter
	// Logger receives logs.
	Logger *slog.Logger
}

// Dialer makes watchers for one kind of remote.
type Dialer interface {
	NewWatcher(r gitcfg.Remote, env Env) (Watcher, error)
}

// Registry maps kinds to dialers; main fills it.
type Registry map[Kind]Dialer

// ErrUnsupported is wrapped when no dialer handles a remote.
var ErrUnsupported = errors.New("no change notifications for this kind of remote")

// NewWatcher returns a watcher for r from the dialer of its kind.
func (reg Registry) NewWatcher(r gitcfg.Remote, env Env) (Watcher, Kind, error) {
	kind := Classify(r.URL)
	d, ok := reg[kind]
	if !ok {
		return nil, kind, fmt.Errorf("%s: %w", r.URL, ErrUnsupported)
	}
	w, err := d.NewWatcher(r, env)
	return w, kind, err
}

// RetryAfter marks an error after which reconnecting soon is pointless
// (wrong host key, authentication refused, repository missing): the
// daemon waits at least After, or for RELOAD or RESUME.
type RetryAfter struct {
	Err   error
	After time.Duration
}

func (e *RetryAfter) Error() string { return e.Err.Error() }
func (e *RetryAfter) Unwrap() error { return e.Err }

// Transient marks an error that is an expected, passing state of the
// remote rather than something for the user to act on: the peer's daemon
// not running yet, a peer that restarted and dropped the session. The
// daemon reports it as `STATUS <remote> waiting: <Waiting>`, once per
// cause, and retries quietly; only other errors are ERRORs.
type Transient struct {
	Err error
	// Waiting says what the daemon waits for, for the STATUS line.
	Waiting string
	// Now retries at once, without backoff: the watcher's next Watch
	// waits by itself until the peer is back (an xmpp:: node's presence).
	Now bool
	// Max, if set, caps the backoff before the next attempt: the peer
	// may be back any moment and nothing tells us (an xmpp:: account's
	// node that serves no repository yet while another of its processes,
	// the one that will, logs in).
	Max time.Duration
	// Wake, if set, ends the wait before the next attempt when closed,
	// and resets the backoff: the peer came back (an xmpp:: node showed
	// its presence: a new login of it, which the failures so far say
	// nothing about).
	Wake <-chan struct{}
}

func (e *Transient) Error() string { return e.Err.Error() }
func (e *Transient) Unwrap() error { return e.Err }
