package pairing

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"

	"github.com/git-remote-daemon/git-remote-daemon/internal/thnode"
)

// Dialer opens a stream to a node's service: thnode.Client.Dial (the
// running daemon's node when one runs with the identity, else a node of
// its own) or thnode.Node.Dial.
type Dialer func(ctx context.Context, addr thnode.Addr, service string) (io.ReadWriteCloser, error)

// ErrRefused wraps the inviter's refusal.
var ErrRefused = errors.New("the inviter refused")

// Joined is what a join learnt.
type Joined struct {
	// Inviter is the inviter's address (from the code, with the
	// repository its answer named).
	Inviter thnode.Addr
	// Suggested is the name the inviter suggests for itself.
	Suggested string
}

// Join joins the invitation of code as self (this node's address: its
// hashname and key, and paths when it listens on a fixed address),
// suggesting the inviter call it suggested. On success the inviter has
// added a remote naming self; the caller adds the one naming the
// inviter.
func Join(ctx context.Context, dial Dialer, self thnode.Addr, code Code, suggested string) (Joined, error) {
	inviter, err := code.Addr()
	if err != nil {
		return Joined{}, err
	}
	if inviter.Hashname == self.Hashname {
		return Joined{}, errors.New("this code is this node's own invitation")
	}
	s, err := dial(ctx, inviter, thnode.ServicePair)
	if err != nil {
		return Joined{}, fmt.Errorf("reaching the inviter: %w", err)
	}
	defer s.Close()
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	nonce := make([]byte, 16)
	if _, err := rand.Read(nonce); err != nil {
		return Joined{}, err
	}
	req := joinRequest{V: version, Nonce: nonce, Proof: proof(code.Secret, inviter.Hashname, self.Hashname, nonce),
		Name: suggested, URL: self.String()}
	if err := writeMessage(s, req); err != nil {
		return Joined{}, ctxErr(ctx, fmt.Errorf("sending to the inviter: %w", err))
	}
	var reply joinReply
	if err := readMessage(bufio.NewReaderSize(s, 512), &reply); err != nil {
		return Joined{}, ctxErr(ctx, fmt.Errorf("the inviter's answer: %w", err))
	}
	if !reply.OK {
		if reply.Error == "" {
			reply.Error = "no reason given"
		}
		return Joined{}, fmt.Errorf("%w: %s", ErrRefused, reply.Error)
	}
	if reply.Repo != "" { // kept only when it is a valid repository name
		withRepo := inviter
		withRepo.Repo = reply.Repo
		if a, err := thnode.ParseAddr(withRepo.String()); err == nil && a.Repo == reply.Repo {
			inviter.Repo = reply.Repo
		}
	}
	return Joined{Inviter: inviter, Suggested: reply.Name}, nil
}

func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%w)", ctx.Err(), err)
	}
	return err
}
