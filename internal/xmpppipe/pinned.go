package xmpppipe

import "github.com/git-remote-daemon/git-remote-daemon/telehash"

// Pinned reports whether the bridge pins hn for account (a bare or full
// JID): whether that node of that account may be a path at all.
func (b *Bridge) Pinned(account string, hn telehash.Hashname) bool {
	return b.pins[bareOf(account)][hn] // set once by New
}
