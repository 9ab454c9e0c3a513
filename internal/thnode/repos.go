package thnode

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/git-remote-daemon/git-remote-daemon/telehash"
	"github.com/git-remote-daemon/git-remote-daemon/watch"
)

// Repo is one repository a node serves. Each decides whom it serves: a
// peer reaches a repository only with a permission of its own there.
type Repo struct {
	// ID names it in stream requests (the repo parameter of th:: URLs).
	ID string
	// GitDir is its git directory.
	GitDir string
	// Hub watches its refs for notify (nil polls).
	Hub *watch.Hub
	// Permission says what each peer may do in it.
	Permission func(telehash.Hashname) Permission
}

// repoSet is the repositories a node serves.
type repoSet struct {
	mu    sync.Mutex
	repos []*Repo
	// dialing counts the links the node is making: a peer we link to
	// must be answered, whether or not a repository allows it.
	dialing map[telehash.Hashname]int
}

func (rs *repoSet) add(r *Repo) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.repos = append(rs.repos, r)
}

func (rs *repoSet) remove(r *Repo) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.repos = slices.DeleteFunc(rs.repos, func(x *Repo) bool { return x == r })
}

func (rs *repoSet) list() []*Repo {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return slices.Clone(rs.repos)
}

// permission is the most peer may do in any repository.
func (rs *repoSet) permission(peer telehash.Hashname) Permission {
	best := None
	for _, r := range rs.list() {
		best = max(best, r.Permission(peer))
	}
	return best
}

// admits says whether the mesh answers peer's handshakes.
func (rs *repoSet) admits(peer telehash.Hashname) bool {
	rs.mu.Lock()
	dialing := rs.dialing[peer] > 0
	rs.mu.Unlock()
	return dialing || rs.permission(peer) >= Read
}

func (rs *repoSet) startDial(peer telehash.Hashname) (done func()) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.dialing == nil {
		rs.dialing = map[telehash.Hashname]int{}
	}
	rs.dialing[peer]++
	return func() {
		rs.mu.Lock()
		defer rs.mu.Unlock()
		if rs.dialing[peer]--; rs.dialing[peer] <= 0 {
			delete(rs.dialing, peer)
		}
	}
}

// Why a stream request resolves to no repository. A peer is told the
// same whether the repository it names does not exist or does not allow
// it: it never learns of repositories that are not for it.
var (
	errNoRepo       = errors.New(reasonNoRepo)
	errNotAllowed   = errors.New(reasonRevoked)
	errAmbiguousReq = errors.New("several repositories here allow you")
)

// reasonNoRepo is the refusal of a request for a repository the node
// does not serve to the peer (also sent by nodes that serve none).
const reasonNoRepo = "this node serves no repository"

// resolve picks the repository a stream request of peer is for: the one
// it names (by ID) among those that allow the peer, or without a name
// the only one that allows it.
func (rs *repoSet) resolve(peer telehash.Hashname, name string) (*Repo, error) {
	all := rs.list()
	var mine []*Repo
	for _, r := range all {
		if r.Permission(peer) >= Read {
			mine = append(mine, r)
		}
	}
	switch {
	case len(mine) == 0 && len(all) > 0:
		return nil, errNotAllowed
	case len(mine) == 0:
		return nil, errNoRepo
	case name != "":
		for _, r := range mine {
			if r.ID == name {
				return r, nil
			}
		}
		return nil, errNoRepo
	case len(mine) == 1:
		return mine[0], nil
	}
	ids := make([]string, len(mine))
	for i, r := range mine {
		ids[i] = "repo=" + r.ID
	}
	return nil, fmt.Errorf("%w: add one of %s to the th:: URL", errAmbiguousReq, strings.Join(ids, ", "))
}
