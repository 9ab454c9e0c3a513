// Package notify is the far-side change notification protocol:
// `git-remote-daemon notify-changes` runs next to the repositories (at the
// other end of ssh, or in a th::/xmpp:: server), watches them with the
// watch package, and streams their ref changes to the daemon.
//
// The protocol is line based. The server first prints a versioned banner,
// so that anything a remote shell prints before it (rc files, motd) is
// skipped. Several repositories are watched over one stream, each under
// an id the client picks:
//
//	client                        server
//	                              git-remote-daemon notify-changes 1
//	WATCH <id> <path>
//	                              REF <id> <sha> <ref>      (current refs...)
//	                              READY <id>
//	                              CHANGE <id> <sha> <ref>   (a batch of changes...)
//	                              DELETE <id> <ref>
//	                              END <id>                  (...ends here)
//	                              ERROR <id> <text>         (the watch of id ended)
//	UNWATCH <id>
//	                              ERROR <id> unwatched
//	PING                          PONG
//
// Capabilities (the banner stays at version 1, which older clients
// require exactly, so they keep working with newer servers): a client that wants more sends
// CAPS with what it knows before anything else; a server that knows
// CAPS answers with what both know, and an older one answers "ERROR *
// ... unknown verb", which the client takes for "none".
//
//	CAPS mux1
//	                              CAPS mux1
//
// With mux1, the stream also carries byte streams, each under a stream id
// the client picks and never reuses on that connection. On each the far
// side runs the helper frame protocol (helper.Serve: the real git
// upload-pack or receive-pack), so a fetch needs no new remote shell:
//
//	OPEN <sid>
//	DATA <sid> <base64>           DATA <sid> <base64>
//	EOF <sid>                     EOF <sid>
//
// EOF ends one direction. A stream is gone once both sides sent EOF; the
// server ends its side when the session ends (and refuses an OPEN it
// cannot serve with EOF alone). DATA for a stream that is gone is dropped.
//
// Every watch ends with exactly one ERROR line about its id: when it
// fails, or in answer to UNWATCH (or to a WATCH reusing its id). Nothing
// more about that watch follows it, so a client may reuse the id at once
// and tell the old watch's lines still in flight from the new one's.
//
// What one stream can make the server hold is bounded: lines are capped
// at MaxLine (a longer one is skipped as it arrives and answered "ERROR *
// line too long"), and a stream holds at most DefaultMaxWatches (4096)
// watches; the excess is answered "ERROR <id> too many watches (4096)".
// Watches of the same repository share one watcher and one copy of its
// refs.
//
// The server exits when its input ends, or when nothing arrived for its
// timeout: the client pings every few seconds, so a vanished client does
// not leave the server running.
package notify

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/git-remote-daemon/git-remote-daemon/protocol"
)

// Version is the protocol version in the banner.
const Version = 1

// BannerPrefix starts the banner line; the version follows.
const BannerPrefix = "git-remote-daemon notify-changes "

// Banner is the line the server prints first.
var Banner = BannerPrefix + strconv.Itoa(Version)

// MaxLine caps a line in either direction.
const MaxLine = 16 << 10

// ErrMalformed is wrapped by every parse error.
var ErrMalformed = errors.New("malformed notify line")

// Msg is one line of the protocol.
type Msg struct {
	Kind Kind
	ID   string // the watch the line is about (not for PING/PONG)
	SHA  string // REF, CHANGE
	Ref  string // REF, CHANGE, DELETE
	Path string // WATCH
	Text string // ERROR; CAPS: the capabilities, space separated
	Data []byte // DATA (never empty)
}

// Kind is a line's first word.
type Kind string

// The kinds of line.
const (
	Watch   Kind = "WATCH"
	Unwatch Kind = "UNWATCH"
	Ping    Kind = "PING"
	Pong    Kind = "PONG"
	Ref     Kind = "REF"
	Ready   Kind = "READY"
	Change  Kind = "CHANGE"
	Delete  Kind = "DELETE"
	End     Kind = "END"
	Error   Kind = "ERROR"
	Caps    Kind = "CAPS"
	Open    Kind = "OPEN"
	Data    Kind = "DATA"
	EOF     Kind = "EOF"
)

// CapMux is the capability of byte streams (OPEN, DATA, EOF).
const CapMux = "mux1"

// MaxData is the most bytes one DATA line carries: its base64 text, with
// "DATA", the longest id and the spaces, stays within MaxLine.
const MaxData = (MaxLine - 128) / 4 * 3

var b64 = base64.StdEncoding.Strict()

// String renders the line without its newline.
func (m Msg) String() string {
	switch m.Kind {
	case Ping, Pong:
		return string(m.Kind)
	case Watch:
		return "WATCH " + m.ID + " " + m.Path
	case Unwatch, Ready, End, Open, EOF:
		return string(m.Kind) + " " + m.ID
	case Caps:
		if m.Text != "" {
			return "CAPS " + m.Text
		}
		return "CAPS"
	case Data:
		return "DATA " + m.ID + " " + b64.EncodeToString(m.Data)
	case Ref, Change:
		return string(m.Kind) + " " + m.ID + " " + m.SHA + " " + m.Ref
	case Delete:
		return "DELETE " + m.ID + " " + m.Ref
	case Error:
		if text := clipText(protocol.OneLine(m.Text), MaxLine-len("ERROR  ")-len(m.ID)); text != "" {
			return "ERROR " + m.ID + " " + text
		}
		return "ERROR " + m.ID
	}
	return string(m.Kind)
}

// Parse parses one line (without its newline).
func Parse(line string) (Msg, error) {
	if len(line) > MaxLine {
		return Msg{}, fmt.Errorf("%w: line of %d bytes", ErrMalformed, len(line))
	}
	// (IndexByte, not ContainsAny: a DATA line is 16 KiB of base64)
	if strings.IndexByte(line, '\n') >= 0 || strings.IndexByte(line, '\r') >= 0 || strings.IndexByte(line, 0) >= 0 {
		return Msg{}, fmt.Errorf("%w: control character in line", ErrMalformed)
	}
	verb, rest, _ := strings.Cut(line, " ")
	m := Msg{Kind: Kind(verb)}
	bad := func(why string) (Msg, error) {
		return Msg{}, fmt.Errorf("%w: %s: %s", ErrMalformed, verb, why)
	}
	switch m.Kind {
	case Ping, Pong:
		if rest != "" || len(line) != len(verb) {
			return bad("takes no arguments")
		}
		return m, nil
	case Unwatch, Ready, End, Open, EOF:
		m.ID = rest
	case Caps:
		if rest == "" && len(line) != len(verb) {
			return bad("empty capability list")
		}
		if rest != "" {
			for _, c := range strings.Split(rest, " ") {
				if !validID(c) {
					return bad("bad capability")
				}
			}
		}
		m.Text = rest
		return m, nil
	case Data:
		var enc string
		m.ID, enc, _ = strings.Cut(rest, " ")
		if enc == "" || b64.DecodedLen(len(enc)) > MaxData+3 {
			return bad("want <sid> <base64> of 1 to MaxData bytes")
		}
		var err error
		if m.Data, err = b64.DecodeString(enc); err != nil || len(m.Data) == 0 || len(m.Data) > MaxData {
			return bad("want <sid> <base64> of 1 to MaxData bytes")
		}
	case Watch:
		m.ID, m.Path, _ = strings.Cut(rest, " ")
		if m.Path == "" {
			return bad("missing path")
		}
	case Ref, Change:
		var ok bool
		m.ID, rest, _ = strings.Cut(rest, " ")
		if m.SHA, m.Ref, ok = strings.Cut(rest, " "); !ok || !protocol.IsObjectName(m.SHA) {
			return bad("want <id> <sha> <ref>")
		}
		if !validRef(m.Ref) {
			return bad("bad ref name")
		}
	case Delete:
		m.ID, m.Ref, _ = strings.Cut(rest, " ")
		if !validRef(m.Ref) {
			return bad("bad ref name")
		}
	case Error:
		var hasText bool
		m.ID, m.Text, hasText = strings.Cut(rest, " ")
		if m.Text != protocol.OneLine(m.Text) || hasText && m.Text == "" {
			return bad("text not on one line")
		}
	default:
		return Msg{}, fmt.Errorf("%w: unknown verb %q", ErrMalformed, clip(verb))
	}
	// "*": an ERROR about no watch in particular.
	if !validID(m.ID) && !(m.Kind == Error && m.ID == "*") {
		return bad("bad id")
	}
	return m, nil
}

// validID accepts short ids of letters, digits and "-_.".
func validID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// validRef accepts what git prints as a ref name: refs/..., no spaces or
// control characters.
func validRef(ref string) bool {
	if !strings.HasPrefix(ref, "refs/") || len(ref) > 4096 {
		return false
	}
	for _, r := range ref {
		if r <= ' ' || r == 0x7f {
			return false
		}
	}
	return true
}

// ParseBanner reports whether line is a banner, and its version.
func ParseBanner(line string) (int, bool) {
	v, ok := strings.CutPrefix(strings.TrimRight(line, "\r"), BannerPrefix)
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, false
	}
	return n, true
}

// clipText cuts s to at most limit bytes, on a rune boundary: an ERROR
// line stays within MaxLine.
func clipText(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	for limit > 0 && !utf8.RuneStart(s[limit]) {
		limit--
	}
	return s[:limit]
}

func clip(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}
