package daemon

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/git-remote-daemon/git-remote-daemon/internal/gitcfg"
	"github.com/git-remote-daemon/git-remote-daemon/internal/gitexec"
	"github.com/git-remote-daemon/git-remote-daemon/internal/gitrepo"
	"github.com/git-remote-daemon/git-remote-daemon/protocol"
	"github.com/git-remote-daemon/git-remote-daemon/watch"
)

// fetch runs `git fetch <remote>`, with --prune when the remote deleted
// refs (only remote-tracking refs are pruned, never local branches).
//
// A git killed in the middle of a fetch (with the daemon, by kill -9)
// leaves its ref locks behind, and every later fetch fails on them
// ("cannot lock ref"). So when a fetch fails while locks of this remote's
// tracking refs exist, those that stay unchanged for staleLockAge are
// removed and the fetch runs once more.
func (d *Daemon) fetch(ctx context.Context, remote string, prune bool, env []string) error {
	args := []string{"fetch", "--quiet"}
	if prune {
		args = append(args, "--prune")
	}
	args = append(args, remote)
	_, err := gitexec.Output(ctx, d.repo.Dir, env, args...)
	if err == nil || ctx.Err() != nil {
		return err
	}
	if removed := clearStaleLocks(ctx, d.repo.CommonDir, remote); len(removed) > 0 {
		d.log.Info("removed stale ref locks; fetching again", "remote", remote, "locks", removed)
		_, err = gitexec.Output(ctx, d.repo.Dir, env, args...)
	}
	return err
}

// gitOutput runs git in dir and returns its stdout; the error carries
// the end of git's stderr.
func gitOutput(ctx context.Context, dir string, args ...string) (string, error) {
	out, err := gitexec.Output(ctx, dir, nil, args...)
	return string(out), err
}

// pullResult says what a pull did to one branch.
type pullResult struct {
	branch, from, to string
	diverged         bool
}

// pull fast-forwards every local branch whose upstream is on remote to
// its fetched tracking ref. A diverged branch is reported and left as it
// is; nothing is ever merged or overwritten. The checked-out branch of a
// worktree moves with `git merge --ff-only` there, so its files follow
// (and git refuses if local changes would be lost).
func (d *Daemon) pull(ctx context.Context, r gitcfg.Remote, cfg *gitcfg.Config) ([]pullResult, error) {
	local, err := watch.Read(ctx, d.repo.CommonDir)
	if err != nil {
		return nil, err
	}
	checkedOut, err := d.worktreeBranches(ctx)
	if err != nil {
		return nil, err
	}
	specs := gitrepo.ParseRefspecs(cfg.GetAll("remote." + r.Name + ".fetch"))
	var results []pullResult
	var errs []string
	for ref, sha := range local {
		branch, ok := strings.CutPrefix(ref, "refs/heads/")
		if !ok {
			continue
		}
		if up, _ := cfg.Get("branch." + branch + ".remote"); up != r.Name {
			continue
		}
		merge, _ := cfg.Get("branch." + branch + ".merge")
		tracking, ok := specs.Map(merge)
		if !ok || local[tracking] == "" || local[tracking] == sha {
			continue
		}
		to := local[tracking]
		if !d.isAncestor(ctx, sha, to) {
			if !d.isAncestor(ctx, to, sha) {
				results = append(results, pullResult{branch: branch, from: sha, to: to, diverged: true})
			}
			continue // ahead of the remote, or diverged
		}
		if wt, ok := checkedOut[ref]; ok {
			_, err = gitOutput(ctx, wt, "merge", "--ff-only", "--quiet", to)
		} else {
			_, err = gitOutput(ctx, d.repo.Dir, "update-ref", "-m", "git-remote-daemon: fast-forward from "+r.Name, ref, to, sha)
		}
		if err != nil {
			errs = append(errs, fmt.Sprintf("fast-forward %s: %v", branch, err))
			continue
		}
		results = append(results, pullResult{branch: branch, from: sha, to: to})
	}
	if len(errs) > 0 {
		return results, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return results, nil
}

func (d *Daemon) isAncestor(ctx context.Context, a, b string) bool {
	_, err := gitOutput(ctx, d.repo.Dir, "merge-base", "--is-ancestor", a, b)
	return err == nil
}

// worktreeBranches maps each checked-out branch to its worktree.
func (d *Daemon) worktreeBranches(ctx context.Context) (map[string]string, error) {
	out := map[string]string{}
	list, err := gitOutput(ctx, d.repo.Dir, "worktree", "list", "--porcelain")
	if err != nil {
		return nil, err
	}
	var path string
	for _, line := range strings.Split(list, "\n") {
		if p, ok := strings.CutPrefix(line, "worktree "); ok {
			path = p
		} else if b, ok := strings.CutPrefix(line, "branch "); ok && path != "" {
			out[b] = path
		}
	}
	return out, nil
}

// push runs `git push <remote>` when the remote has push refspecs (or is
// a mirror) configured, and otherwise pushes every local branch and tag
// to the ref of the same name: `git push <remote> refs/heads/*:refs/heads/*
// refs/tags/*:refs/tags/*`. Nothing is forced: a push that is not a
// fast-forward (or would move a tag) is rejected by git and reported.
// local is the snapshot of the local refs taken just before: the result
// names, for each remote ref the push updated, its new object name.
func (d *Daemon) push(ctx context.Context, remote string, cfg *gitcfg.Config, env []string, local watch.Refs) (pushResult, error) {
	args := []string{"push", "--porcelain", remote}
	if targets, defaults := pushTargets(remote, cfg, local); defaults {
		args = append(args, exactSpecs(targets)...)
	}
	out, err := gitexec.Output(ctx, d.repo.Dir, env, args...)
	res := parsePushed(string(out), local)
	if err != nil {
		if rejected := rejectedRefs(string(out)); rejected != "" {
			return res, fmt.Errorf("rejected: %s", rejected)
		}
		return res, err
	}
	return res, nil
}

// defaultPushSpecs are pushed without remote.<name>.push: every branch
// and tag, never forced.
var defaultPushSpecs = []string{"refs/heads/*:refs/heads/*", "refs/tags/*:refs/tags/*"}

// pushSpecs returns the refspecs a push to remote uses, and whether they
// are the defaultPushSpecs.
func pushSpecs(remote string, cfg *gitcfg.Config) (specs gitrepo.Refspecs, defaults bool) {
	if mirror, _ := cfg.Bool("remote."+remote+".mirror", false); mirror {
		return gitrepo.ParseRefspecs([]string{"refs/*:refs/*"}), false
	}
	if specs := cfg.GetAll("remote." + remote + ".push"); len(specs) > 0 {
		return gitrepo.ParseRefspecs(specs), false
	}
	return gitrepo.ParseRefspecs(defaultPushSpecs), true
}

// pushTargets returns what a push of local to remote would set each
// remote ref it maps to (deletions cannot be foreseen), and whether the
// push uses the defaultPushSpecs.
func pushTargets(remote string, cfg *gitcfg.Config, local watch.Refs) (map[string]string, bool) {
	specs, defaults := pushSpecs(remote, cfg)
	out := map[string]string{}
	for ref, sha := range local {
		if dst, ok := specs.Map(ref); ok {
			out[dst] = sha
		}
	}
	return out, defaults
}

// maxExactSpecs bounds the refspecs given to one git push: beyond, the
// wildcards go, and a ref changed while the push starts may be taken.
const maxExactSpecs = 2000

// exactSpecs turns the default push of every branch and tag into one
// "<object name>:<ref>" refspec per ref, so that the push carries exactly
// the snapshot the daemon expects to see on the remote: a branch or tag
// made meanwhile waits for the next push rather than coming back as a
// change of the remote.
func exactSpecs(targets map[string]string) []string {
	if len(targets) > maxExactSpecs {
		return defaultPushSpecs
	}
	specs := make([]string, 0, len(targets))
	for ref, sha := range targets {
		specs = append(specs, sha+":"+ref)
	}
	sort.Strings(specs)
	return specs
}

// pushResult is what a push did.
type pushResult struct {
	// updated maps each remote ref the push updated, or found up to
	// date, to its object name ("" deleted).
	updated map[string]string
	// changed is set when the push changed any remote ref.
	changed bool
}

// parsePushed reads `git push --porcelain` output: a line per ref,
// "<flag>\t<src>:<dst>\t<summary>", flag ' ' fast-forward, '+' forced,
// '-' deleted, '*' new, '=' up to date, '!' rejected.
func parsePushed(out string, local watch.Refs) pushResult {
	res := pushResult{updated: map[string]string{}}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Split(line, "\t")
		if len(f) < 3 || len(f[0]) != 1 {
			continue
		}
		src, dst, ok := strings.Cut(f[1], ":")
		if !ok || dst == "" {
			continue
		}
		switch f[0] {
		case "-":
			res.updated[dst], res.changed = "", true
		case " ", "+", "*", "=":
			if protocol.IsObjectName(src) {
				res.updated[dst] = src
			} else if sha, ok := local[src]; ok {
				res.updated[dst] = sha
			}
			res.changed = res.changed || f[0] != "="
		}
	}
	return res
}

// rejectedRefs extracts the refused refs from `git push --porcelain`
// output ("!\t<src>:refs/heads/a\t[rejected] (fetch first)"), by the
// name they have on the remote.
func rejectedRefs(out string) string {
	var r []string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Split(line, "\t"); len(f) >= 3 && f[0] == "!" {
			src, dst, _ := strings.Cut(f[1], ":")
			if dst == "" {
				dst = src
			}
			r = append(r, strings.TrimPrefix(dst, "refs/heads/")+" "+f[2])
		}
	}
	return strings.Join(r, ", ")
}
