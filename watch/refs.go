// Package watch sees ref changes in a git repository within milliseconds.
//
// It watches the git directory, refs/** (adding new subdirectories as they
// appear), packed-refs and reftable/ with inotify (through fsnotify), and
// settles each burst of events by diffing complete listings, so that new
// branches in new subdirectories, tags, deletions and `git pack-refs` are
// all seen, and no single event needs to be caught. A listing reads loose
// refs and packed-refs in process with git's rules (Read), and asks
// `git for-each-ref` only for what it cannot read (reftable). Between
// events a watcher only stats the refs directories and packed-refs now and
// then, for events inotify may have lost; an inotify queue overflow makes
// every repository list its refs. When inotify cannot be used it polls
// the same way. One Hub shares a single inotify instance among any number
// of watched repositories.
//
// The same watcher runs in the daemon (local remotes, the repository
// itself) and on the far side of remote transports.
package watch

import (
	"bytes"
	"context"
	"fmt"
	"sort"

	"github.com/git-remote-daemon/git-remote-daemon/internal/gitexec"
)

// Refs maps full ref names (refs/heads/main) to object names.
type Refs map[string]string

// Change is one ref's move. Old is empty for a new ref, New empty for a
// deleted one.
type Change struct {
	Ref, Old, New string
}

// Deleted reports whether the change removes the ref.
func (c Change) Deleted() bool { return c.New == "" }

// Diff returns the changes that turn old into new, sorted by ref name.
func Diff(old, new Refs) []Change {
	var out []Change
	for ref, sha := range new {
		if o := old[ref]; o != sha {
			out = append(out, Change{Ref: ref, Old: o, New: sha})
		}
	}
	for ref, sha := range old {
		if _, ok := new[ref]; !ok {
			out = append(out, Change{Ref: ref, Old: sha})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Ref < out[j].Ref })
	return out
}

// Equal reports whether two ref sets are the same.
func (r Refs) Equal(o Refs) bool {
	if len(r) != len(o) {
		return false
	}
	for k, v := range r {
		if ov, ok := o[k]; !ok || ov != v {
			return false
		}
	}
	return true
}

// Clone returns a copy of r.
func (r Refs) Clone() Refs {
	c := make(Refs, len(r))
	for k, v := range r {
		c[k] = v
	}
	return c
}

// Snapshot lists the refs of the repository whose git directory is gitDir
// with `git for-each-ref`, which reads loose refs, packed-refs and reftable
// alike.
func Snapshot(ctx context.Context, gitDir string) (Refs, error) {
	out, err := gitexec.Output(ctx, "", nil, "--git-dir="+gitDir, "for-each-ref", "--format=%(objectname) %(refname)")
	if err != nil {
		return nil, err
	}
	return ParseRefs(out)
}

// ParseRefs parses lines of "<sha> <refname>".
func ParseRefs(out []byte) (Refs, error) {
	refs := Refs{}
	for n, line := range bytes.Split(out, []byte{'\n'}) {
		if len(line) == 0 {
			continue
		}
		sha, ref, ok := bytes.Cut(line, []byte{' '})
		if !ok || len(ref) == 0 || (len(sha) != 40 && len(sha) != 64) {
			return nil, fmt.Errorf("for-each-ref line %d: malformed %q", n+1, line)
		}
		refs[string(ref)] = string(sha)
	}
	return refs, nil
}
