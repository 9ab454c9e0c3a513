package thnode

import (
	"sync/atomic"

	"github.com/git-remote-daemon/git-remote-daemon/helper"
	"github.com/git-remote-daemon/git-remote-daemon/internal/gitcfg"
	"github.com/git-remote-daemon/git-remote-daemon/telehash"
)

// Permission is what a peer may do with the repository a node serves.
// Levels are ordered: each includes the ones below it.
type Permission int

const (
	// None: the peer's handshakes go unanswered and it gets nothing.
	None Permission = iota
	// Read: fetch (git upload-pack) and watch (notify).
	Read
	// Write: Read and push (git receive-pack), within what git's own
	// receive.deny* settings allow.
	Write
)

func (p Permission) String() string {
	switch p {
	case None:
		return "none"
	case Read:
		return "read"
	case Write:
		return "write"
	}
	return "invalid"
}

// AllowList says what each peer may do: the peers named in one of the
// repository's th:: remotes may read, and those named in a remote with
// remote.<name>.daemonAllowPush true may also write (a peer named in
// several remotes gets the most any of them gives). The set is swapped
// whole, so Permission, which the mesh calls on its read loop for every
// handshake of an unknown peer, is one map lookup and never runs git.
type AllowList struct {
	set atomic.Pointer[map[telehash.Hashname]Permission]
}

// Permission returns peer's permission in the current set.
func (a *AllowList) Permission(peer telehash.Hashname) Permission {
	p := a.set.Load()
	if p == nil {
		return None
	}
	return (*p)[peer]
}

// Allowed reports whether peer may link to the node at all.
func (a *AllowList) Allowed(peer telehash.Hashname) bool { return a.Permission(peer) >= Read }

// Set makes the set the peers named by cfg's th:: remotes and returns
// those whose permission is now lower than before (read only, or none).
func (a *AllowList) Set(cfg *gitcfg.Config) (lowered []telehash.Hashname) {
	next := permissions(cfg)
	old := a.set.Swap(&next)
	if old == nil {
		return nil
	}
	for h, was := range *old {
		if next[h] < was {
			lowered = append(lowered, h)
		}
	}
	return lowered
}

// permissions maps each peer named by cfg's th:: remotes to its
// permission.
func permissions(cfg *gitcfg.Config) map[telehash.Hashname]Permission {
	out := map[telehash.Hashname]Permission{}
	for _, p := range append(thPeers(cfg), xmppPeers(cfg)...) { // xmpp:: remotes: xmppnode.go
		level := Read
		if p.remote.AllowPush {
			level = Write
		}
		out[p.addr.Hashname] = max(out[p.addr.Hashname], level)
	}
	return out
}

// need is the permission a git service asks for: Write for
// receive-pack, Read for upload-pack.
func need(service string) Permission {
	if service == helper.UploadPack {
		return Read
	}
	return Write // receive-pack, and whatever else: the most demanding
}
