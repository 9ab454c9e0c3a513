package pairing

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/internal/thnode"
	"github.com/git-remote-daemon/git-remote-daemon/telehash"
)

// DefaultTimeout is how long a code is valid unless said otherwise.
const DefaultTimeout = 10 * time.Minute

// Errors an invitation ends with.
var (
	// ErrExpired: nobody joined in time.
	ErrExpired = errors.New("the pairing code expired unused")
	// ErrWrongSecret: a node proved a secret other than the code's;
	// the invitation is closed (a code is good for one attempt).
	ErrWrongSecret = errors.New("a node tried a wrong pairing code; the invitation is closed")
	// ErrBusy: an invitation is open already.
	ErrBusy = errors.New("an invitation is open already; wait for it to end")
	// ErrNotInvited is what a joiner is told when no invitation is open
	// (used, expired, or never made).
	ErrNotInvited = errors.New("no invitation is open for this code: it was used, has expired, or was cancelled")
)

// AddRemote makes the repository name the node that joined (see Remote);
// suggested is the name the joiner suggested.
type AddRemote func(ctx context.Context, peer thnode.Addr, suggested string) (remote string, err error)

// InviteOptions configure an invitation.
type InviteOptions struct {
	// Timeout is the code's life (default DefaultTimeout).
	Timeout time.Duration
	// Add names the node that joins; it is called once, after the
	// joiner proved the secret.
	Add AddRemote
	// Suggested is the name this side suggests the joiner call it.
	Suggested string
	// Repo names the repository among those the node serves (the repo
	// parameter of th:: URLs), for the joiner's remote.
	Repo string
}

// Result is how an invitation ended.
type Result struct {
	// Remote names the node that joined, Peer is its address.
	Remote string
	Peer   thnode.Addr
	Err    error
}

// Inviter holds the open invitation of one repository's node. It is the
// node's thnode.Pairing: give it to the node (or the Service) at start.
// An Inviter with no invitation open admits nobody.
type Inviter struct {
	Logger *slog.Logger

	mu  sync.Mutex
	cur *invitation
}

var _ thnode.Pairing = (*Inviter)(nil)

type invitation struct {
	secret  [SecretSize]byte
	expires time.Time
	opts    InviteOptions
	node    *thnode.Node
	used    bool
	guests  map[telehash.Hashname]bool
	done    chan Result // one result
	timer   *time.Timer
	self    thnode.Addr
}

func (m *Inviter) log() *slog.Logger {
	if m.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return m.Logger
}

// Invitation is an open invitation.
type Invitation struct {
	m   *Inviter
	inv *invitation
	// Code is what the joiner needs.
	Code Code
}

// Open opens an invitation on node (which must have a Pairing hook
// that is m) and returns it with its code.
func (m *Inviter) Open(node *thnode.Node, opts InviteOptions) (*Invitation, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Add == nil {
		return nil, errors.New("pairing: no way to add a remote")
	}
	self := node.Addr()
	paths, err := reachablePaths(self.Paths)
	if err != nil {
		return nil, err
	}
	self.Paths = paths
	var secret [SecretSize]byte
	if _, err := rand.Read(secret[:]); err != nil {
		return nil, err
	}
	code, err := NewCode(self, secret)
	if err != nil {
		return nil, err
	}
	self.Paths = code.Paths
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cur != nil {
		return nil, ErrBusy
	}
	inv := &invitation{secret: secret, expires: time.Now().Add(opts.Timeout), opts: opts, node: node,
		guests: map[telehash.Hashname]bool{}, done: make(chan Result, 1), self: self}
	inv.timer = time.AfterFunc(opts.Timeout, func() { m.finish(inv, Result{Err: ErrExpired}) })
	m.cur = inv
	m.log().Info("pairing: invitation open", "expires", inv.expires.Format(time.RFC3339), "paths", code.Paths)
	return &Invitation{m: m, inv: inv, Code: code}, nil
}

// reachablePaths turns the node's bound address into the paths a code
// gives: an unspecified address means each IPv4 address of this machine,
// loopback last.
func reachablePaths(bound []netip.AddrPort) ([]netip.AddrPort, error) {
	var out []netip.AddrPort
	for _, p := range bound {
		if !p.Addr().IsUnspecified() {
			out = append(out, p)
			continue
		}
		all, err := thnode.ListenPaths(p.String())
		if err != nil {
			return nil, err
		}
		out = append(out, all...)
	}
	sort.SliceStable(out, func(i, j int) bool { return !out[i].Addr().IsLoopback() && out[j].Addr().IsLoopback() })
	if len(out) > MaxPaths {
		out = out[:MaxPaths]
	}
	return out, nil
}

// Wait returns how the invitation ended; when ctx ends first it cancels
// the invitation (and returns ctx's error).
func (i *Invitation) Wait(ctx context.Context) Result {
	select {
	case r := <-i.inv.done:
		return r
	case <-ctx.Done():
		i.m.finish(i.inv, Result{Err: fmt.Errorf("pairing cancelled: %w", ctx.Err())})
		return <-i.inv.done
	}
}

// finish ends inv with r, once; the strangers it let in and that no
// remote names now lose their sessions.
func (m *Inviter) finish(inv *invitation, r Result) {
	m.mu.Lock()
	if m.cur != inv {
		m.mu.Unlock()
		return
	}
	m.cur = nil
	inv.used = true
	inv.timer.Stop()
	var guests []telehash.Hashname
	for h := range inv.guests {
		guests = append(guests, h)
	}
	m.mu.Unlock()
	inv.done <- r
	if len(guests) > 0 {
		go inv.node.Revoke(guests) // off the caller: it may be the mesh's own goroutine
	}
	if r.Err != nil {
		m.log().Info("pairing: invitation closed", "err", r.Err)
	} else {
		m.log().Info("pairing: paired", "remote", r.Remote, "peer", r.Peer.Hashname)
	}
}

// Admit lets any node link while an invitation is open and unused: it
// may open the pair service only (the node refuses it everything else).
// The mesh's per-source handshake limits still apply.
func (m *Inviter) Admit(peer telehash.Hashname) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	inv := m.cur
	if inv == nil || inv.used || !time.Now().Before(inv.expires) {
		return false
	}
	if len(inv.guests) < maxGuests { // forgotten when the invitation ends
		inv.guests[peer] = true
	}
	return true
}

// maxGuests bounds the strangers an invitation remembers, to drop their
// sessions when it ends (the others' go idle and are let go).
const maxGuests = 256

// answerWithin bounds the joiner's request and the inviter's own work.
const answerWithin = 30 * time.Second

// ServePair serves one pair stream: the first request with a proof
// consumes the invitation, whether the proof is right or wrong.
func (m *Inviter) ServePair(ctx context.Context, n *thnode.Node, peer telehash.Hashname, s io.ReadWriter) error {
	ctx, cancel := context.WithTimeout(ctx, answerWithin)
	defer cancel()
	if c, ok := s.(io.Closer); ok {
		stop := context.AfterFunc(ctx, func() { c.Close() })
		defer stop()
	}
	br := bufio.NewReaderSize(s, 512)
	var req joinRequest
	if err := readMessage(br, &req); err != nil {
		return err
	}
	m.mu.Lock()
	inv := m.cur
	ok := inv != nil && inv.node == n && !inv.used && time.Now().Before(inv.expires)
	if ok {
		inv.used = true // consumed: by this attempt, right or wrong
	}
	m.mu.Unlock()
	if !ok {
		_ = writeMessage(s, joinReply{Error: ErrNotInvited.Error()})
		drain(br)
		return ErrNotInvited
	}
	reply, r := m.accept(ctx, inv, n, peer, req)
	err := writeMessage(s, reply)
	drain(br) // the joiner has the answer once it hangs up
	m.finish(inv, r)
	if err == nil {
		err = r.Err
	}
	return err
}

// accept checks a join request to the invitation and carries it out.
func (m *Inviter) accept(ctx context.Context, inv *invitation, n *thnode.Node, peer telehash.Hashname, req joinRequest) (joinReply, Result) {
	if err := req.check(); err != nil {
		return joinReply{Error: err.Error()}, Result{Err: fmt.Errorf("%s sent a bad pairing request: %w", peer, err)}
	}
	if !checkProof(inv.secret, n.Addr().Hashname, peer, req.Nonce, req.Proof) {
		return joinReply{Error: "wrong pairing code"}, Result{Err: fmt.Errorf("%w (by %s)", ErrWrongSecret, peer)}
	}
	addr, err := thnode.ParseAddr(req.URL)
	if err == nil && addr.Hashname != peer {
		err = fmt.Errorf("its URL names %s", addr.Hashname)
	}
	if err == nil && len(addr.Keys) == 0 {
		err = errors.New("its URL has no key")
	}
	if err != nil {
		err = fmt.Errorf("%s: %w", peer, err)
		return joinReply{Error: err.Error()}, Result{Err: err}
	}
	remote, err := inv.opts.Add(ctx, addr, req.Name)
	if err != nil {
		return joinReply{Error: "the inviter could not add a remote for you"}, Result{Err: err}
	}
	waitAllowed(ctx, n, peer)
	return joinReply{OK: true, Name: inv.opts.Suggested, Repo: inv.opts.Repo}, Result{Remote: remote, Peer: addr}
}

// drain reads until the joiner hangs up (or the stream's deadline).
func drain(r io.Reader) { _, _ = io.Copy(io.Discard, io.LimitReader(r, maxMessage)) }

// waitAllowed waits (a few seconds at most) until the node's allow list
// names peer, so that the joiner's first fetch right after the pairing
// (git clone) is answered.
func waitAllowed(ctx context.Context, n *thnode.Node, peer telehash.Hashname) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for n.Permission(peer) < thnode.Read {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
