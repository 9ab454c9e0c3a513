package daemon

import (
	"bytes"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/git-remote-daemon/git-remote-daemon/internal/gitrepo"
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
	return filepath.Join(commonDir, "remote-daemon", "known", knownFile(remote))
}

// knownFile is the file name of a remote's state: safe for any remote
// name. Escaped as in a URL path ("a/b" is "a%2Fb"), and so is a leading
// dot, so that neither "." nor ".." is a directory and no name is a
// hidden file (a temporary file of writeFileAtomic, say). Other names keep
// the file name they always had.
func knownFile(remote string) string {
	name := url.PathEscape(remote)
	if strings.HasPrefix(name, ".") {
		name = "%2E" + name[1:]
	}
	return name
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

// parseRefspecs and mapRef are gitrepo's, under the names runner.go
// knows them by.
func parseRefspecs(specs []string) gitrepo.Refspecs { return gitrepo.ParseRefspecs(specs) }

func mapRef(specs gitrepo.Refspecs, ref string) (string, bool) { return specs.Map(ref) }

// deriveKnown guesses which of the remote's refs the local repository is
// already up to date with: those whose tracking ref (through the fetch
// refspecs), or for a ref no refspec maps (tags) its same-named local ref,
// has the same object.
func deriveKnown(remote, local watch.Refs, specs gitrepo.Refspecs) watch.Refs {
	known := watch.Refs{}
	for ref, sha := range remote {
		if l, ok := specs.Map(ref); ok && local[l] == sha {
			known[ref] = sha
		} else if !ok && local[ref] == sha {
			known[ref] = sha
		}
	}
	return known
}
