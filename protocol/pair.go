package protocol

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Pairing messages: a program driving the daemon pairs the repository
// with another node without anyone pasting th:: URLs (README, "Pairing").
//
//	> PAIR [name=<remote>] [allowpush] [timeout=<seconds>]
//	< PAIRCODE <code>               give the code to the other side
//	< PAIRED <remote> <th:: url>    the other side joined; the remote names it
//	> PAIRJOIN <code> [name=<remote>] [allowpush]
//	< PAIRED <remote> <th:: url>    joined: the remote names the inviter
//
// A pairing that fails (a wrong, used or expired code, a timeout, a
// remote that exists) is reported as ERROR * pair: <why>. Options come in
// the order shown, each at most once.
type (
	// Pair opens an invitation: the daemon answers PAIRCODE, then PAIRED
	// when a node joined with the code (or ERROR * when none did in
	// time, or one tried a wrong secret). Name names the remote for the
	// joiner ("" lets the daemon choose); AllowPush lets the joiner
	// push; Timeout is the code's life in seconds (0: the default).
	Pair struct {
		Name      string
		AllowPush bool
		Timeout   int
	}
	// PairJoin joins the invitation of another node with its code: the
	// daemon answers PAIRED (or ERROR *). Name names the remote for the
	// inviter; AllowPush lets the inviter push here.
	PairJoin struct {
		Code      string
		Name      string
		AllowPush bool
	}
	// PairCode is the code of the invitation PAIR opened: one word, to
	// be handed to the other side (valid once, for a limited time).
	PairCode struct{ Code string }
	// Paired reports a pairing done: Remote (added, or one that named the
	// node already) now names the other node, reachable at URL.
	Paired struct{ Remote, URL string }
)

func (Pair) Verb() string     { return "PAIR" }
func (PairJoin) Verb() string { return "PAIRJOIN" }
func (PairCode) Verb() string { return "PAIRCODE" }
func (Paired) Verb() string   { return "PAIRED" }

func (m Pair) String() string {
	return strings.Join(append([]string{"PAIR"}, pairOptions(m.Name, m.AllowPush, m.Timeout)...), " ")
}

func (m PairJoin) String() string {
	return strings.Join(append([]string{"PAIRJOIN", m.Code}, pairOptions(m.Name, m.AllowPush, 0)...), " ")
}

func (m PairCode) String() string { return "PAIRCODE " + m.Code }
func (m Paired) String() string   { return "PAIRED " + m.Remote + " " + m.URL }

func pairOptions(name string, allowPush bool, timeout int) []string {
	var out []string
	if name != "" {
		out = append(out, "name="+name)
	}
	if allowPush {
		out = append(out, "allowpush")
	}
	if timeout != 0 {
		out = append(out, "timeout="+strconv.Itoa(timeout))
	}
	return out
}

// MaxPairTimeout caps PAIR's timeout (a day): a code is meant to be used
// at once.
const MaxPairTimeout = 24 * 60 * 60

// parsePair parses the pairing messages; ok is false for another verb.
func parsePair(verb, rest, line string) (m Message, ok bool, err error) {
	switch verb {
	case "PAIR":
		var words []string
		if line != verb {
			words = strings.Split(rest, " ")
		}
		p, err := parsePairOptions(words, true)
		if err != nil {
			return nil, true, fmt.Errorf("%w: PAIR: %w", ErrMalformed, err)
		}
		return Pair{Name: p.name, AllowPush: p.allowPush, Timeout: p.timeout}, true, nil
	case "PAIRJOIN":
		words := strings.Split(rest, " ")
		if err := checkCode(words[0]); err != nil {
			return nil, true, fmt.Errorf("%w: PAIRJOIN: %w", ErrMalformed, err)
		}
		p, err := parsePairOptions(words[1:], false)
		if err != nil {
			return nil, true, fmt.Errorf("%w: PAIRJOIN: %w", ErrMalformed, err)
		}
		return PairJoin{Code: words[0], Name: p.name, AllowPush: p.allowPush}, true, nil
	case "PAIRCODE":
		if err := checkCode(rest); err != nil {
			return nil, true, fmt.Errorf("%w: PAIRCODE: %w", ErrMalformed, err)
		}
		return PairCode{Code: rest}, true, nil
	case "PAIRED":
		remote, url, _ := strings.Cut(rest, " ")
		if err := checkRemote(remote); err != nil {
			return nil, true, fmt.Errorf("%w: PAIRED: %w", ErrMalformed, err)
		}
		if err := checkWord(url); err != nil {
			return nil, true, fmt.Errorf("%w: PAIRED: url: %w", ErrMalformed, err)
		}
		return Paired{Remote: remote, URL: url}, true, nil
	}
	return nil, false, nil
}

type pairOpts struct {
	name      string
	allowPush bool
	timeout   int
}

// parsePairOptions reads name=, allowpush and (withTimeout) timeout=, in
// that order, each at most once: one message has one spelling.
func parsePairOptions(words []string, withTimeout bool) (pairOpts, error) {
	var p pairOpts
	next := 0 // the rank the next option must exceed
	for _, w := range words {
		key, val, hasVal := strings.Cut(w, "=")
		rank := 0
		switch {
		case key == "name" && hasVal:
			if err := checkRemote(val); err != nil {
				return p, err
			}
			if val == Daemon {
				return p, errors.New("name=*: * is no remote")
			}
			p.name, rank = val, 1
		case key == "allowpush" && !hasVal:
			p.allowPush, rank = true, 2
		case key == "timeout" && hasVal && withTimeout:
			n, err := strconv.Atoi(val)
			if err != nil || n <= 0 || n > MaxPairTimeout || strconv.Itoa(n) != val {
				return p, fmt.Errorf("timeout=%s: not a number of seconds from 1 to %d", clip(val), MaxPairTimeout)
			}
			p.timeout, rank = n, 3
		default:
			return p, fmt.Errorf("unknown option %q", clip(w))
		}
		if rank <= next {
			return p, fmt.Errorf("option %q repeated or out of order", clip(w))
		}
		next = rank
	}
	return p, nil
}

// maxCode bounds a pairing code.
const maxCode = 1024

// checkCode accepts a pairing code's spelling: one word of letters,
// digits and '-' (its content is checked by whoever uses it).
func checkCode(code string) error {
	if code == "" {
		return errors.New("missing code")
	}
	if len(code) > maxCode {
		return fmt.Errorf("code of %d bytes", len(code))
	}
	for _, r := range code {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return fmt.Errorf("code %q has a character other than letters, digits and -", clip(code))
		}
	}
	return nil
}

// checkWord accepts one non-empty word without spaces or control
// characters.
func checkWord(w string) error {
	if w == "" {
		return errors.New("missing")
	}
	for _, r := range w {
		if r <= ' ' || r == 0x7f {
			return fmt.Errorf("%q has a space or control character", clip(w))
		}
	}
	return nil
}
