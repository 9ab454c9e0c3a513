package pairing

import (
	"context"

	"github.com/git-remote-daemon/git-remote-daemon/internal/thnode"
)

var _ thnode.InviteHolder = (*Inviter)(nil)

// HoldInvitation opens an invitation on n, the node this process hosts,
// for a repository another process of the identity registered with it
// (the lending socket's INVITE): the node admits the joiner and checks
// its proof as for an invitation of its own, and h.Add, in the
// registering process, names the joiner there. It shares the one
// invitation a node holds at a time (ErrBusy) and returns when the
// invitation ends: nil when a joiner paired.
func (m *Inviter) HoldInvitation(ctx context.Context, n *thnode.Node, h thnode.HeldInvitation) error {
	inv, err := m.Open(n, InviteOptions{Timeout: h.Timeout, Suggested: h.Suggested, Repo: h.Repo, Add: AddRemote(h.Add)})
	if err != nil {
		return err
	}
	m.log().Info("pairing: holding an invitation for another repository of this identity", "repo", h.Repo)
	if err := h.Opened(inv.Code.String()); err != nil {
		inv.Wait(canceled())
		return err
	}
	return inv.Wait(ctx).Err
}

func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}
