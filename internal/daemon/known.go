package daemon

import (
	"bytes"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/git-remote-daemon/git-remote-daemon/watch"
)

// The daemon remembers, per remote, the refs it last acted on (fetched,
// or reported when the action is none) in
// <common git dir>/remote-daemon/known/<remote>. On every connect it
// compares the remote's refs with them, so a change made while the daemon
// was disconnected, paused or not running is reported and acted on.
// Without that file (first run) it derives them from the remote-tracking
// refs, so an up-to-date clone reports nothing.

func knownPath(commonDir, remote string) string {
	return filepath.Join(commonDir, "remote-daemon", "known", url.PathEscape(remote))
}

// loadKnown reads the remembered refs; ok is false when there are none.
func loadKnown(commonDir, remote string) (watch.Refs, bool, error) {
	data, err := os.ReadFile(knownPath(commonDir, remote))
	if os.IsNotExist(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	refs, err := watch.ParseRefs(data)
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", knownPath(commonDir, remote), err)
	}
	return refs, true, nil
}

// saveKnown writes the refs atomically.
func saveKnown(commonDir, remote string, refs watch.Refs) error {
	names := make([]string, 0, len(refs))
	for r := range refs {
		names = append(names, r)
	}
	sort.Strings(names)
	var b bytes.Buffer
	for _, r := range names {
		fmt.Fprintf(&b, "%s %s\n", refs[r], r)
	}
	return writeFileAtomic(knownPath(commonDir, remote), b.Bytes(), 0o644)
}

func forgetKnown(commonDir, remote string) {
	_ = os.Remove(knownPath(commonDir, remote))
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// refspec is one fetch refspec, e.g. +refs/heads/*:refs/remotes/origin/*.
type refspec struct {
	src, dst string
	negative bool
}

func parseRefspecs(specs []string) []refspec {
	var out []refspec
	for _, s := range specs {
		s = strings.TrimPrefix(s, "+")
		if neg, ok := strings.CutPrefix(s, "^"); ok {
			out = append(out, refspec{src: neg, negative: true})
			continue
		}
		src, dst, _ := strings.Cut(s, ":")
		if src == "" || dst == "" {
			continue
		}
		out = append(out, refspec{src: src, dst: dst})
	}
	return out
}

// match maps a remote ref through one refspec.
func (s refspec) match(ref string) (string, bool) {
	pre, post, glob := strings.Cut(s.src, "*")
	if !glob {
		return s.dst, ref == s.src
	}
	if !strings.HasPrefix(ref, pre) || !strings.HasSuffix(ref, post) || len(ref) < len(pre)+len(post) {
		return "", false
	}
	star := ref[len(pre) : len(ref)-len(post)]
	return strings.Replace(s.dst, "*", star, 1), true
}

// mapRef maps a remote ref to the local ref the refspecs fetch it into.
func mapRef(specs []refspec, ref string) (string, bool) {
	for _, s := range specs {
		if s.negative {
			if _, ok := (refspec{src: s.src, dst: "x"}).match(ref); ok {
				return "", false
			}
		}
	}
	for _, s := range specs {
		if s.negative {
			continue
		}
		if l, ok := s.match(ref); ok {
			return l, true
		}
	}
	return "", false
}

// deriveKnown guesses which of the remote's refs the local repository is
// already up to date with: those whose tracking ref (through the fetch
// refspecs), or same-named local ref (tags), has the same object.
func deriveKnown(remote, local watch.Refs, specs []refspec) watch.Refs {
	known := watch.Refs{}
	for ref, sha := range remote {
		if l, ok := mapRef(specs, ref); ok && local[l] == sha {
			known[ref] = sha
		} else if local[ref] == sha {
			known[ref] = sha
		}
	}
	return known
}
