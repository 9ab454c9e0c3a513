package thnode

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"
)

// Invitations held for another process of the identity (docs/pairing.md,
// "Where the node runs"). Only the host's node can admit a stranger, so
// a daemon whose repository is registered with the host asks it, on a
// connection of its own to the lending socket, to hold an invitation for
// that repository. The host's node admits joiners for the pair service
// only and checks their proof (its Pairing, an InviteHolder); the
// registering daemon adds the remote naming the joiner, with its
// repository's own configuration, so each repository still decides whom
// it serves, and the joiner is given that repository's id:
//
//	> INVITE {"git_dir":..,"timeout":<seconds>,"name":<suggested>}
//	< OK <code>                   the invitation is open (or ERR <why>)
//	< JOIN {"url":..,"name":..}   a joiner proved the code: name it
//	> OK <remote> | ERR <why>
//	< OK | ERR <why>              how the invitation ended
//
// The invitation ends when it is used (right or wrong), when it expires,
// when the connection closes (the inviting daemon stopped or cancelled),
// or when the repository's registration ends.

// InviteRequest asks the host to hold an invitation (INVITE).
type InviteRequest struct {
	// GitDir is the git directory of the repository the requesting
	// process registered with the host (REGISTER).
	GitDir string `json:"git_dir"`
	// Timeout is the code's life in seconds (0: the default).
	Timeout int `json:"timeout,omitempty"`
	// Name is the name the inviting repository suggests the joiner call
	// it.
	Name string `json:"name,omitempty"`
}

// maxInviteTimeout is the longest life of a code, in seconds (24 h).
const maxInviteTimeout = 24 * 60 * 60

func (q InviteRequest) check() error {
	switch {
	case q.GitDir == "":
		return errors.New("no git_dir")
	case q.Timeout < 0 || q.Timeout > maxInviteTimeout:
		return fmt.Errorf("timeout %d: not from 0 to %d seconds", q.Timeout, maxInviteTimeout)
	}
	return nil
}

// InviteHolder is a Pairing that can hold an invitation on its node for
// another process of the identity (pairing.Inviter).
type InviteHolder interface {
	// HoldInvitation opens an invitation on n and returns when it ends:
	// nil when a joiner paired, else why not (ctx ending cancels it).
	HoldInvitation(ctx context.Context, n *Node, h HeldInvitation) error
}

// HeldInvitation is an invitation a host holds for another process.
type HeldInvitation struct {
	// Timeout is the code's life (0: the Pairing's default).
	Timeout time.Duration
	// Suggested is the name the inviting repository suggests the joiner
	// call it; Repo is that repository's id on the node.
	Suggested, Repo string
	// Opened is given the code once the invitation is open.
	Opened func(code string) error
	// Add names the joiner in the inviting repository (once the joiner
	// proved the code) and returns the remote's name.
	Add func(ctx context.Context, peer Addr, suggested string) (remote string, err error)
}

// inviteLine is a line the host sends on an INVITE connection after its
// first answer, or the inviting process's answer to JOIN: OK [arg],
// ERR why, or JOIN with the joiner's URL and suggested name.
type inviteLine struct {
	Verb string // OK, ERR or JOIN
	Arg  string // OK's argument (a code, a remote's name) or ERR's reason
	Join inviteJoin
}

type inviteJoin struct {
	URL  string `json:"url"`
	Name string `json:"name,omitempty"`
}

var errBadInviteLine = errors.New("bad invitation line")

// parseInviteLine parses a line (without its newline) of an INVITE
// connection.
func parseInviteLine(line string) (inviteLine, error) {
	if len(line) > maxLocalLine || strings.ContainsAny(line, "\r\n") {
		return inviteLine{}, errBadInviteLine
	}
	verb, rest, more := strings.Cut(line, " ")
	l := inviteLine{Verb: verb}
	switch {
	case verb == "OK" && (!more || rest != ""):
		l.Arg = rest
	case verb == "ERR" && rest != "":
		l.Arg = rest
	case verb == "JOIN":
		if err := json.Unmarshal([]byte(rest), &l.Join); err != nil {
			return inviteLine{}, fmt.Errorf("%w: JOIN: %v", errBadInviteLine, err)
		}
		if _, err := ParseAddr(l.Join.URL); err != nil {
			return inviteLine{}, fmt.Errorf("%w: JOIN: %v", errBadInviteLine, err)
		}
		if strings.ContainsAny(l.Join.Name, "\r\n") {
			return inviteLine{}, fmt.Errorf("%w: JOIN: a name with a line break", errBadInviteLine)
		}
	default:
		return inviteLine{}, errBadInviteLine
	}
	return l, nil
}

// String renders the line (without its newline).
func (l inviteLine) String() string {
	switch {
	case l.Verb == "JOIN":
		var b bytes.Buffer
		e := json.NewEncoder(&b)
		e.SetEscapeHTML(false) // a URL's & as it is
		_ = e.Encode(l.Join)   // strings only: cannot fail
		return "JOIN " + strings.TrimSuffix(b.String(), "\n")
	case l.Arg != "":
		return l.Verb + " " + l.Arg
	}
	return l.Verb
}

// registrations are the repositories registered with the node, by git
// directory: INVITE names one of them.
type registrations struct {
	mu sync.Mutex
	m  map[string]*registered
}

type registered struct {
	id   string
	done chan struct{} // closed when the registration ends
}

func (rs *registrations) add(gitDir, id string) (remove func()) {
	r := &registered{id: id, done: make(chan struct{})}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.m == nil {
		rs.m = map[string]*registered{}
	}
	rs.m[gitDir] = r
	return func() {
		rs.mu.Lock()
		defer rs.mu.Unlock()
		if rs.m[gitDir] == r {
			delete(rs.m, gitDir)
		}
		close(r.done)
	}
}

func (rs *registrations) get(gitDir string) *registered {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.m[gitDir]
}

// holdInvitation serves an INVITE: the node's Pairing holds the
// invitation while the connection stays open.
func (n *Node) holdInvitation(ctx context.Context, c *net.UnixConn, br *bufio.Reader, q InviteRequest) {
	var wmu sync.Mutex
	write := func(l inviteLine) error {
		wmu.Lock()
		defer wmu.Unlock()
		_, err := io.WriteString(c, l.String()+"\n")
		return err
	}
	holder, ok := n.opts.Pairing.(InviteHolder)
	if !ok {
		_ = write(inviteLine{Verb: "ERR", Arg: "the process hosting this identity's node cannot hold invitations"})
		return
	}
	reg := n.regs.get(q.GitDir)
	if reg == nil {
		_ = write(inviteLine{Verb: "ERR", Arg: "this repository is not registered with the node's host"})
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-reg.done: // the daemon stopped serving it here
			cancel()
		case <-ctx.Done():
		}
	}()
	answers := make(chan string)
	go func() { // the inviting process hanging up cancels the invitation
		defer cancel()
		for {
			line, err := readLine(br)
			if err != nil {
				return
			}
			select {
			case answers <- line:
			case <-ctx.Done():
				return
			}
		}
	}()
	err := holder.HoldInvitation(ctx, n, HeldInvitation{
		Timeout: time.Duration(q.Timeout) * time.Second, Suggested: q.Name, Repo: reg.id,
		Opened: func(code string) error { return write(inviteLine{Verb: "OK", Arg: code}) },
		Add: func(actx context.Context, peer Addr, suggested string) (string, error) {
			if err := write(inviteLine{Verb: "JOIN", Join: inviteJoin{URL: peer.String(), Name: suggested}}); err != nil {
				return "", fmt.Errorf("telling the inviting process: %w", err)
			}
			select {
			case line := <-answers:
				l, err := parseInviteLine(line)
				switch {
				case err != nil:
					return "", err
				case l.Verb == "OK" && l.Arg != "":
					return l.Arg, nil
				case l.Verb == "ERR":
					return "", errors.New(l.Arg)
				}
				return "", fmt.Errorf("%w: %q", errBadInviteLine, line)
			case <-actx.Done():
				return "", fmt.Errorf("the inviting process did not answer: %w", context.Cause(actx))
			case <-ctx.Done():
				return "", errors.New("the inviting process went away")
			}
		}})
	if err != nil {
		_ = write(inviteLine{Verb: "ERR", Arg: oneLine(err)})
		return
	}
	_ = write(inviteLine{Verb: "OK"})
}

// InviteAtHost asks the process hosting the node, with which this
// service registered its repository, to hold an invitation for it (see
// InviteRequest): opened gets the code, add names the joiner in the
// repository. It returns the remote add named and the joiner's address
// once a joiner paired, or why the invitation ended. ctx ending, or this
// service leaving the host, cancels the invitation.
func (s *Service) InviteAtHost(ctx context.Context, h HeldInvitation) (remote string, peer Addr, err error) {
	l, ok := s.Link().(*hostLink)
	if !ok {
		return "", Addr{}, errors.New("this repository's telehash node is not hosted by another process")
	}
	secs := int((h.Timeout + time.Second - 1) / time.Second)
	line := localRequest{Verb: "INVITE", Invite: InviteRequest{GitDir: s.opts.GitDir, Timeout: secs, Name: h.Suggested}}.String()
	c, br, code, err := requestLocal(ctx, l.hn, line)
	if err != nil {
		return "", Addr{}, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	finished := make(chan struct{})
	defer close(finished)
	go func() { // leaving the host (the daemon moves, or the host stops) ends it
		select {
		case <-l.done:
			c.Close()
		case <-finished:
		}
	}()
	if err := h.Opened(code); err != nil {
		return "", Addr{}, err
	}
	var addErr error
	for {
		text, err := readLine(br)
		if err != nil {
			if ctx.Err() != nil {
				return "", Addr{}, fmt.Errorf("pairing cancelled: %w", ctx.Err())
			}
			return "", Addr{}, fmt.Errorf("the process hosting the node ended the invitation: %w", err)
		}
		il, err := parseInviteLine(text)
		if err != nil {
			return "", Addr{}, err
		}
		switch il.Verb {
		case "JOIN":
			a, _ := ParseAddr(il.Join.URL) // parseInviteLine checked it
			name, err := h.Add(ctx, a, il.Join.Name)
			answer := inviteLine{Verb: "OK", Arg: name}
			if err != nil {
				addErr, answer = err, inviteLine{Verb: "ERR", Arg: oneLine(err)}
			} else {
				remote, peer = name, a
			}
			if _, err := io.WriteString(c, answer.String()+"\n"); err != nil {
				return "", Addr{}, fmt.Errorf("answering the node's host: %w", err)
			}
		case "OK":
			if remote == "" {
				return "", Addr{}, fmt.Errorf("%w: the invitation ended without a joiner", errBadInviteLine)
			}
			return remote, peer, nil
		case "ERR":
			if addErr != nil {
				return "", Addr{}, addErr
			}
			return "", Addr{}, errors.New(il.Arg)
		}
	}
}
