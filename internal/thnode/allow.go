package thnode

import (
	"sync/atomic"

	"github.com/git-remote-daemon/git-remote-daemon/internal/gitcfg"
	"github.com/git-remote-daemon/git-remote-daemon/telehash"
)

// AllowList says which peers may link to the node and use its services:
// those named in one of the repository's th:: remotes. The set is
// swapped whole, so Allowed, which the mesh calls on its read loop for
// every handshake of an unknown peer, is one map lookup and never runs
// git.
type AllowList struct {
	set atomic.Pointer[map[telehash.Hashname]bool]
}

// Allowed reports whether peer is in the current set.
func (a *AllowList) Allowed(peer telehash.Hashname) bool {
	p := a.set.Load()
	return p != nil && (*p)[peer]
}

// Set makes the set the peers named by cfg's th:: remotes and returns
// those that were allowed before and are no longer.
func (a *AllowList) Set(cfg *gitcfg.Config) (revoked []telehash.Hashname) {
	next := map[telehash.Hashname]bool{}
	for _, addr := range thRemotes(cfg) {
		next[addr.Hashname] = true
	}
	old := a.set.Swap(&next)
	if old == nil {
		return nil
	}
	for h := range *old {
		if !next[h] {
			revoked = append(revoked, h)
		}
	}
	return revoked
}
