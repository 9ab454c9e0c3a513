package daemon

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/internal/gitcfg"
	"github.com/git-remote-daemon/git-remote-daemon/internal/transport"
	"github.com/git-remote-daemon/git-remote-daemon/protocol"
	"github.com/git-remote-daemon/git-remote-daemon/watch"
)

// work performs the actions and pushes, one at a time, coalescing
// requests that arrive meanwhile. A failed action or push (a full disk,
// a remote that refused) is held and tried again after a backoff, at
// once on RESUME or RELOAD (kickNow), and with the next change or push
// request, until it succeeds; its ERROR is emitted once per cause, and
// `status` shows it until then. A node of the remote coming back while
// another keeps it connected (transport.Joiner) retries at once too: a
// push to every URL failed for want of it.
func (r *runner) work(ctx context.Context) {
	name := r.cfg.Name
	b := r.d.newBackoff()
	var retry <-chan time.Time // armed while something failed
	var joined <-chan struct{}
	if j, ok := r.watcher.(transport.Joiner); ok {
		joined = j.Joined()
	}
	pushHeld, pushDue := false, false
	for {
		retrying := false
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
		case <-retry:
			retrying = true
		case <-r.again:
			retrying = true
			b.Reset()
		case <-joined:
			if retry != nil { // something failed: now
				r.d.log.Info("retrying now: a node of the remote is back", "remote", name)
				retrying = true
				b.Reset()
			}
		}
		failed := false
		for ctx.Err() == nil && !failed {
			// A fetch waits for its turn before it takes the changes:
			// those that come meanwhile make one fetch with them.
			turn := r.wantsTurn(retrying)
			if turn && !r.d.takeFetchTurn(ctx) {
				return
			}
			r.mu.Lock()
			req := r.pending
			r.pending = nil
			if r.held != nil && (req != nil || retrying) {
				req = r.held.merge(req)
				r.held = nil
			}
			canPush := !r.watched || r.connected
			r.mu.Unlock()
			if req != nil && !turn && r.fetches() { // came after wantsTurn looked
				if !r.d.takeFetchTurn(ctx) {
					r.mu.Lock()
					r.pending = req.merge(r.pending)
					r.mu.Unlock()
					return
				}
				turn = true
			}
			if req != nil {
				ok := r.act(ctx, req)
				if turn {
					r.d.endFetchTurn()
				}
				if !ok {
					r.mu.Lock()
					r.held = req.merge(r.held) // PAUSE may have come: kept for nothing
					r.mu.Unlock()
					failed = true
				}
				continue
			}
			if turn {
				r.d.endFetchTurn()
			}
			if !canPush { // disconnected: the failed push is due at connect
				pushDue = pushDue || pushHeld && retrying
				break
			}
			if want, asked := r.d.pushes.take(name); want || pushHeld && (retrying || pushDue) {
				pushDue = false
				pushHeld = !r.push(ctx, asked)
				failed = pushHeld
				continue
			}
			break
		}
		r.mu.Lock()
		held := r.held != nil || pushHeld
		r.mu.Unlock()
		switch {
		case failed && ctx.Err() == nil:
			wait := b.Next()
			r.d.log.Info("retrying", "remote", name, "in", wait.Round(time.Millisecond))
			retry = r.d.clock.After(wait)
		case !held:
			retry = nil
			b.Reset()
		}
	}
}

// wantsTurn reports whether the worker is about to act on a change with
// a fetch (or pull), which takes one of the daemon's fetch turns.
func (r *runner) wantsTurn(retrying bool) bool {
	if !r.fetches() {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pending != nil || r.held != nil && retrying
}

// fetches reports whether the remote's action fetches.
func (r *runner) fetches() bool {
	return r.cfg.Action == gitcfg.ActionFetch || r.cfg.Action == gitcfg.ActionPull
}

// takeFetchTurn waits until fewer than MaxFetches fetches run; false
// when ctx ended first.
func (d *Daemon) takeFetchTurn(ctx context.Context) bool {
	select {
	case d.fetchTurn <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

func (d *Daemon) endFetchTurn() { <-d.fetchTurn }

// merge returns a with the newer request b coalesced into it: b's refs
// win, the environments of both are kept (a's first).
func (a *actionReq) merge(b *actionReq) *actionReq {
	if a == nil {
		return b
	}
	if b != nil {
		a.refs = b.refs
		a.prune = a.prune || b.prune
		for _, env := range b.envs {
			a.addEnv(env)
		}
	}
	return a
}

// act performs the remote's daemonAction, and remembers the refs acted on
// once it succeeded. It reports whether it did.
func (r *runner) act(ctx context.Context, req *actionReq) bool {
	name := r.cfg.Name
	fail := func(what string, err error) bool {
		if ctx.Err() == nil {
			r.reportError(what, what+" failed: "+err.Error())
		}
		return false
	}
	switch r.cfg.Action {
	case gitcfg.ActionFetch, gitcfg.ActionPull:
		envs := req.envs
		if len(envs) == 0 {
			envs = [][]string{nil}
		}
		for _, env := range envs {
			if err := r.d.fetch(ctx, name, req.prune, env); err != nil {
				return fail("fetch", err)
			}
		}
		r.d.reported.clear(name, "fetch")
	}
	if err := saveKnown(r.d.repo.CommonDir, name, req.refs); err != nil {
		r.d.log.Warn("cannot save state", "remote", name, "err", err)
	}
	switch r.cfg.Action {
	case gitcfg.ActionFetch:
		r.d.emit(protocol.Status{Remote: name, Text: "fetched"})
	case gitcfg.ActionPull:
		select { // one pull at a time; stopping the runner ends the wait
		case r.d.pullTurn <- struct{}{}:
		case <-ctx.Done():
			return false
		}
		results, err := r.d.pull(ctx, r.cfg, r.d.config())
		<-r.d.pullTurn
		var moved []string
		for _, p := range results {
			if p.diverged {
				r.reportError("diverged "+p.branch, fmt.Sprintf("branch %s has diverged from %s (%.10s vs %.10s): not merged", p.branch, name, p.from, p.to))
			} else {
				r.d.reported.clear(name, "diverged "+p.branch)
				moved = append(moved, fmt.Sprintf("%s %.10s..%.10s", p.branch, p.from, p.to))
			}
		}
		if err != nil {
			fail("pull", err)
		}
		text := "fetched"
		if len(moved) > 0 {
			text = "fetched; fast-forwarded " + strings.Join(moved, ", ")
		}
		r.d.emit(protocol.Status{Remote: name, Text: text})
		if err != nil {
			return false
		}
		r.d.reported.clear(name, "pull")
	}
	return true
}

// push pushes to the remote and reports whether it succeeded; asked says
// a PUSH command asked for it, which gets its answer (pushed, up to date,
// or the error even when the last push failed the same way); a push of
// daemonPush that changed nothing says nothing. The refs it
// updates on the remote are what the daemon knows of them from then on:
// the watcher seeing them change is no CHANGED, and nothing is fetched
// back.
func (r *runner) push(ctx context.Context, asked bool) bool {
	name := r.cfg.Name
	cfg := r.d.config()
	fail := func(err error) bool {
		m := protocol.Error{Remote: name, Text: "push failed: " + err.Error()}
		if r.d.reported.first(r.cfg, "push", m.String()) || asked {
			r.d.emit(m)
		}
		return false
	}
	local, err := watch.Read(ctx, r.d.repo.CommonDir)
	if err != nil {
		if ctx.Err() != nil {
			r.d.pushes.add(name, asked)
			return true
		}
		return fail(err)
	}
	expect, defaults := pushTargets(name, cfg, local)
	if len(expect) == 0 && defaults { // no branch nor tag yet: git would fail
		r.d.reported.clear(name, "push")
		if asked {
			r.d.emit(protocol.Status{Remote: name, Text: "up to date"})
		}
		return true
	}
	r.mu.Lock()
	r.expect = expect
	r.mu.Unlock()
	res, err := r.d.push(ctx, name, cfg, r.pushEnv(), local)
	r.ownPush(res.updated)
	if err != nil {
		if ctx.Err() != nil {
			r.d.pushes.add(name, asked) // interrupted by PAUSE: push after RESUME
			return true
		}
		return fail(err)
	}
	r.d.reported.clear(name, "push")
	switch {
	case res.changed:
		r.d.emit(protocol.Status{Remote: name, Text: "pushed"})
	case asked: // a PUSH command is answered; a push of daemonPush that found nothing to do says nothing
		r.d.emit(protocol.Status{Remote: name, Text: "up to date"})
	}
	return true
}

// notOwn leaves out of changes those the running push makes. Called with
// r.mu held.
func (r *runner) notOwn(changes []watch.Change) []watch.Change {
	if len(r.expect) == 0 {
		return changes
	}
	out := changes[:0:0]
	for _, c := range changes {
		if sha, ok := r.expect[c.Ref]; ok && sha == c.New {
			continue
		}
		out = append(out, c)
	}
	return out
}

// ownPush records the refs a push updated (ref -> new object name, ""
// deleted) as the remote's refs the daemon knows, in memory and in its
// state, and ends the wait for the watcher to see them.
func (r *runner) ownPush(updated map[string]string) {
	r.mu.Lock()
	r.expect = nil
	if len(updated) > 0 {
		if r.seen != nil {
			r.seen = withRefs(r.seen, updated)
		}
		for _, req := range []*actionReq{r.pending, r.held} {
			if req != nil {
				req.refs = withRefs(req.refs, updated)
			}
		}
	}
	r.mu.Unlock()
	if len(updated) == 0 {
		return
	}
	known, ok, err := loadKnown(r.d.repo.CommonDir, r.cfg.Name)
	if err != nil || !ok {
		return // derived from the remote-tracking refs, which git push updated
	}
	if err := saveKnown(r.d.repo.CommonDir, r.cfg.Name, withRefs(known, updated)); err != nil {
		r.d.log.Warn("cannot save state", "remote", r.cfg.Name, "err", err)
	}
}

// withRefs returns a copy of refs with updated applied.
func withRefs(refs watch.Refs, updated map[string]string) watch.Refs {
	out := maps.Clone(refs)
	if out == nil {
		out = watch.Refs{}
	}
	for ref, sha := range updated {
		if sha == "" {
			delete(out, ref)
		} else {
			out[ref] = sha
		}
	}
	return out
}
