// Package protocol implements the line protocol git-remote-daemon speaks on
// stdin/stdout with the program that started it as `git-remote-daemon
// --foreground` (README, "The stdio protocol"; git-annex's remotedaemon
// protocol).
//
// The protocol is asynchronous and line based: either side may send any
// message at any time and no message is answered. Each message is one line
// of space separated words ending in "\n". The daemon emits CONNECTED,
// DISCONNECTED, CHANGED, STATUS and ERROR (and PAIRCODE and PAIRED when
// pairing); it consumes PAUSE, RESUME, PUSH and RELOAD (and PAIR and
// PAIRJOIN).
//
// A program driving the daemon reads its stdout with NewReader and Parse,
// which returns one of the message types below (switch on them), and
// writes commands to its stdin with NewWriter and Send; see the example.
// Lines are capped at MaxLineLength; parse errors wrap ErrMalformed.
package protocol

import (
	"errors"
	"fmt"
	"strings"
)

// MaxLineLength caps one protocol line, newline excluded. Longer lines are
// refused before they are buffered whole.
const MaxLineLength = 64 << 10

// Daemon is the remote name used in ERROR and STATUS messages that concern
// no single remote, such as a malformed input line. '*' cannot appear in a
// git remote name, so it never collides with a real remote.
const Daemon = "*"

// ErrMalformed is wrapped by every parse error.
var ErrMalformed = errors.New("malformed message")

// Message is one protocol line.
type Message interface {
	// String renders the message as one line, without the newline.
	String() string
	// Verb is the message's first word, e.g. "CHANGED".
	Verb() string
}

// Messages the daemon emits.
type (
	// Connected is sent when a connection with a remote has been made
	// (for a local remote: once its watch is established).
	Connected struct{ Remote string }
	// Disconnected is sent when the connection with a remote is lost or
	// closed by PAUSE.
	Disconnected struct{ Remote string }
	// Changed says that refs in the remote changed, giving their new
	// values. A deleted ref is given as the all-zero object name.
	Changed struct {
		Remote string
		SHAs   []string
	}
	// Status is a user-visible status message about a remote.
	Status struct{ Remote, Text string }
	// Error is a user-visible error about a remote; the daemon keeps
	// running after it.
	Error struct{ Remote, Text string }
)

// Messages the daemon consumes.
type (
	// Pause asks the daemon to close its connections and idle.
	Pause struct{}
	// Resume asks the daemon to start its connections again.
	Resume struct{}
	// Push asks for a git push to the remote when next possible.
	Push struct{ Remote string }
	// Reload asks the daemon to re-read the repository's config.
	Reload struct{}
)

func (Connected) Verb() string    { return "CONNECTED" }
func (Disconnected) Verb() string { return "DISCONNECTED" }
func (Changed) Verb() string      { return "CHANGED" }
func (Status) Verb() string       { return "STATUS" }
func (Error) Verb() string        { return "ERROR" }
func (Pause) Verb() string        { return "PAUSE" }
func (Resume) Verb() string       { return "RESUME" }
func (Push) Verb() string         { return "PUSH" }
func (Reload) Verb() string       { return "RELOAD" }

func (m Connected) String() string    { return "CONNECTED " + m.Remote }
func (m Disconnected) String() string { return "DISCONNECTED " + m.Remote }
func (m Changed) String() string {
	return "CHANGED " + m.Remote + " " + strings.Join(m.SHAs, " ")
}
func (m Status) String() string { return withText("STATUS "+m.Remote, m.Text) }
func (m Error) String() string  { return withText("ERROR "+m.Remote, m.Text) }
func (Pause) String() string    { return "PAUSE" }
func (Resume) String() string   { return "RESUME" }
func (m Push) String() string   { return "PUSH " + m.Remote }
func (Reload) String() string   { return "RELOAD" }

func withText(head, text string) string {
	if text = OneLine(text); text != "" {
		return head + " " + text
	}
	return head
}

// OneLine makes text fit on one protocol line: control characters
// (newlines included) become spaces, runs of spaces fold into one, and the
// result is trimmed and capped so the whole line stays under MaxLineLength.
func OneLine(text string) string {
	var b strings.Builder
	space := false
	for _, r := range text {
		if r < ' ' || r == 0x7f || r == ' ' {
			space = b.Len() > 0
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(r)
	}
	s := b.String()
	if limit := MaxLineLength - 1024; len(s) > limit {
		s = s[:limit]
		for len(s) > 0 && s[len(s)-1]&0xc0 == 0x80 { // do not split a rune
			s = s[:len(s)-1]
		}
		if len(s) > 0 && s[len(s)-1] >= 0xc0 {
			s = s[:len(s)-1]
		}
	}
	return s
}

// Parse parses one line (without its newline) into a Message of any kind.
func Parse(line string) (Message, error) {
	if len(line) > MaxLineLength {
		return nil, fmt.Errorf("%w: line of %d bytes exceeds %d", ErrMalformed, len(line), MaxLineLength)
	}
	if strings.ContainsAny(line, "\r\n") {
		return nil, fmt.Errorf("%w: line break inside a line", ErrMalformed)
	}
	verb, rest, _ := strings.Cut(line, " ")
	switch verb {
	case "PAUSE", "RESUME", "RELOAD":
		if rest != "" || strings.HasSuffix(line, " ") {
			return nil, fmt.Errorf("%w: %s takes no arguments", ErrMalformed, verb)
		}
		switch verb {
		case "PAUSE":
			return Pause{}, nil
		case "RESUME":
			return Resume{}, nil
		default:
			return Reload{}, nil
		}
	case "PUSH", "CONNECTED", "DISCONNECTED":
		if err := checkRemote(rest); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrMalformed, verb, err)
		}
		switch verb {
		case "PUSH":
			return Push{Remote: rest}, nil
		case "CONNECTED":
			return Connected{Remote: rest}, nil
		default:
			return Disconnected{Remote: rest}, nil
		}
	case "CHANGED":
		remote, shas, _ := strings.Cut(rest, " ")
		if err := checkRemote(remote); err != nil {
			return nil, fmt.Errorf("%w: CHANGED: %w", ErrMalformed, err)
		}
		if shas == "" {
			return nil, fmt.Errorf("%w: CHANGED without an object name", ErrMalformed)
		}
		list := strings.Split(shas, " ")
		for _, s := range list {
			if !IsObjectName(s) {
				return nil, fmt.Errorf("%w: CHANGED: %q is not an object name", ErrMalformed, s)
			}
		}
		return Changed{Remote: remote, SHAs: list}, nil
	case "STATUS", "ERROR":
		remote, text, hasText := strings.Cut(rest, " ")
		if err := checkRemote(remote); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrMalformed, verb, err)
		}
		if text != OneLine(text) || hasText && text == "" {
			return nil, fmt.Errorf("%w: %s: text is not in normal form", ErrMalformed, verb)
		}
		if verb == "STATUS" {
			return Status{Remote: remote, Text: text}, nil
		}
		return Error{Remote: remote, Text: text}, nil
	case "":
		return nil, fmt.Errorf("%w: empty line", ErrMalformed)
	}
	if m, ok, err := parsePair(verb, rest, line); ok {
		return m, err
	}
	return nil, fmt.Errorf("%w: unknown message %q", ErrMalformed, clip(verb))
}

// ParseCommand parses a line sent to the daemon: PAUSE, RESUME, PUSH,
// RELOAD, PAIR or PAIRJOIN. Any other message is an error.
func ParseCommand(line string) (Message, error) {
	m, err := Parse(line)
	if err != nil {
		return nil, err
	}
	switch m.(type) {
	case Pause, Resume, Push, Reload, Pair, PairJoin:
		return m, nil
	}
	return nil, fmt.Errorf("%w: %s is sent by the daemon, not to it", ErrMalformed, m.Verb())
}

// checkRemote accepts what git accepts as a remote name for the protocol:
// non-empty, no spaces or control characters.
func checkRemote(name string) error {
	if name == "" {
		return errors.New("missing remote name")
	}
	for _, r := range name {
		if r <= ' ' || r == 0x7f {
			return fmt.Errorf("remote name %q has a space or control character", clip(name))
		}
	}
	return nil
}

// IsObjectName reports whether s is a full hexadecimal object name
// (SHA-1 or SHA-256), lowercase as git prints it.
func IsObjectName(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
