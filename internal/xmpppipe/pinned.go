package xmpppipe

import (
	"context"
	"fmt"

	"mellium.im/xmpp/jid"

	"github.com/git-remote-daemon/git-remote-daemon/telehash"
)

// Pinned reports whether the bridge pins hn for account (a bare or full
// JID): whether that node of that account may be a path at all.
func (b *Bridge) Pinned(account string, hn telehash.Hashname) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.pins[bareOf(account)][hn]
}

// AddPins pins more nodes on the live session, without logging in again
// (which every peer would see as our node going and coming back, their
// streams with it): accounts not pinned before become peers of the
// session (xmpp.Session.AddPeers), and a node online now whose hashname
// is newly pinned gets its pipe, as if its presence came now.
func (b *Bridge) AddPins(ctx context.Context, pins ...Pin) error {
	account := b.sess.Account()
	type pin struct {
		bare string
		hn   telehash.Hashname
	}
	var ps []pin
	for _, p := range pins {
		pj, err := jid.Parse(p.JID)
		if err != nil {
			return fmt.Errorf("xmpppipe: pinned JID %q: %w", p.JID, err)
		}
		if _, err := telehash.ParseHashname(string(p.Hashname)); err != nil {
			return fmt.Errorf("xmpppipe: pin for %s: %w", p.JID, err)
		}
		ps = append(ps, pin{pj.Bare().String(), p.Hashname})
	}
	var accounts []string
	b.mu.Lock()
	for _, p := range ps {
		if b.pins[p.bare] == nil {
			b.pins[p.bare] = map[telehash.Hashname]bool{}
			if p.bare != account {
				accounts = append(accounts, p.bare)
			}
		}
		b.pins[p.bare][p.hn] = true
	}
	b.mu.Unlock()
	// The session replays its online nodes to onPeer, which now finds
	// the new pins.
	if err := b.sess.AddPeers(ctx, accounts...); err != nil {
		return fmt.Errorf("xmpppipe: %w", err)
	}
	return nil
}
