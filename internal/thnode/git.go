package thnode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/helper"
	"github.com/git-remote-daemon/git-remote-daemon/telehash"
)

// errPushRevoked ends a push whose peer lost the permission to push.
var errPushRevoked = errors.New("push permission revoked")

// pushRevokedGrace bounds the sending of the message that tells a peer
// its push was ended; a peer that does not take it in is cut off.
const pushRevokedGrace = 5 * time.Second

// serveGit serves git's pack protocol (helper frames) on the stream s of
// channel c. A push whose peer loses the permission to push while it
// runs is ended at once (git receive-pack is killed before it moves a
// ref, unless it already did), and the peer is told why in an ERROR
// frame, which git-remote-th prints; the peer's session and its other
// streams stay.
func (n *Node) serveGit(ctx context.Context, c *telehash.Channel, s *telehash.Stream, repo *Repo) error {
	svcCtx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	err := helper.Serve(svcCtx, keepOpen{s}, helper.ServeOptions{RepoDir: repo.GitDir, Logger: n.log,
		Authorize: func(_ context.Context, a helper.Access) error {
			return n.authorize(c, repo, a, func() { stop(errPushRevoked) })
		}})
	if err == nil || ctx.Err() != nil || !errors.Is(context.Cause(svcCtx), errPushRevoked) {
		return err
	}
	n.log.Info("ended the push of a peer no longer allowed to push", "peer", c.Peer())
	cut := time.AfterFunc(pushRevokedGrace, func() { c.Abort(reasonPushRevoked) })
	defer cut.Stop()
	msg := fmt.Sprintf("%s: %s no longer allows %s to push", helper.ErrNotAuthorized, n.opts.Identity.Hashname(), c.Peer())
	if werr := (helper.ErrorFrame{Message: msg}).Encode(s); werr != nil {
		return fmt.Errorf("%w (telling the peer: %w)", err, werr)
	}
	return err
}

// keepOpen leaves the closing of the stream to serveGit, which may still
// have to send an ERROR frame after helper.Serve returns. helper.Serve
// closes its stream when its context ends to unblock its reads; reads of
// a telehash stream end with the stream's own context (the node's, or a
// full revocation's), and the session's reader is not waited for once
// the service was killed.
type keepOpen struct{ io.ReadWriter }

func (keepOpen) Close() error { return nil }

// authorize approves the helper request of the git stream c, before
// any git process starts: the peer must have the permission the service
// needs now. The stream is marked as needing it (with demote, which ends
// the service when the peer keeps less) before the check, so that a
// revocation racing with the check either is seen by it or ends the
// stream.
func (n *Node) authorize(c *telehash.Channel, repo *Repo, a helper.Access, demote func()) error {
	want := need(a.Service)
	n.streams.require(c, want, demote)
	has := repo.Permission(c.Peer())
	if has >= want {
		return nil
	}
	if want == Write && has >= Read {
		return fmt.Errorf("%w: %s does not allow %s to push (the remote naming you needs remote.<name>.daemonAllowPush true)",
			helper.ErrNotAuthorized, n.opts.Identity.Hashname(), c.Peer())
	}
	return helper.ErrNotAuthorized
}
