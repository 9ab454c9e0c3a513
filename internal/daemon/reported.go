package daemon

import (
	"strings"
	"sync"

	"github.com/git-remote-daemon/git-remote-daemon/internal/gitcfg"
)

// reported remembers, per remote and per cause (watching it, fetching,
// pushing, ...), the last ERROR or waiting STATUS the daemon emitted, so
// that a retry that fails the same way says nothing new: an ERROR is
// emitted once per cause. It outlives the remote's runner (PAUSE/RESUME,
// a RELOAD that left the remote alone), and is forgotten when the
// remote's settings change, when it is removed, and cause by cause when
// what failed succeeds.
type reported struct {
	mu      sync.Mutex
	remotes map[string]*remoteReports
}

type remoteReports struct {
	cfg  gitcfg.Remote
	last map[string]string // cause -> text emitted
}

// first records text as the cause's latest and reports whether it is new
// (to be emitted).
func (p *reported) first(rc gitcfg.Remote, cause, text string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.remotes == nil {
		p.remotes = map[string]*remoteReports{}
	}
	rr, ok := p.remotes[rc.Name]
	if !ok || !rr.cfg.Equal(rc) {
		rr = &remoteReports{cfg: rc, last: map[string]string{}}
		p.remotes[rc.Name] = rr
	}
	if rr.last[cause] == text {
		return false
	}
	rr.last[cause] = text
	return true
}

// clear forgets the causes of remote that start with prefix: they
// succeeded, and their next failure is news.
func (p *reported) clear(remote, prefix string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if rr, ok := p.remotes[remote]; ok {
		for cause := range rr.last {
			if strings.HasPrefix(cause, prefix) {
				delete(rr.last, cause)
			}
		}
	}
}

// forget drops everything about remote (it was removed).
func (p *reported) forget(remote string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.remotes, remote)
}
