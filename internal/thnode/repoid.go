package thnode

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/git-remote-daemon/git-remote-daemon/internal/gitcfg"
	"github.com/git-remote-daemon/git-remote-daemon/telehash"
)

// RepoID is the name by which peers ask a node for this repository when
// the node serves several that allow them (the repo parameter of th::
// URLs): remotedaemon.thRepo when set, else a random id made once and
// kept in <common dir>/remote-daemon/th-repo. It names the repository
// without telling anything of the machine (no path, no user name).
func RepoID(cfg *gitcfg.Config, commonDir string) (string, error) {
	if v, ok := cfg.Get("remotedaemon.threpo"); ok {
		if !validRepoID(v) {
			return "", fmt.Errorf("remotedaemon.thRepo: %q is not 1 to 64 of a-z, 0-9, '.', '_', '-'", v)
		}
		return v, nil
	}
	if commonDir == "" {
		return "", nil
	}
	path := filepath.Join(commonDir, "remote-daemon", "th-repo")
	if id, err := readRepoID(path); err == nil || !errors.Is(err, os.ErrNotExist) {
		return id, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	var b [10]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	id := telehash.Base32Encode(b[:])[:16]
	// Written aside, then linked into place: it appears whole, and the
	// first of processes making it at once wins.
	tmp, err := os.CreateTemp(filepath.Dir(path), ".th-repo-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(id + "\n")
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err != nil {
		return "", err
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, os.ErrExist) {
			return readRepoID(path)
		}
		return "", err
	}
	return id, nil
}

func readRepoID(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	id := strings.TrimSpace(string(b))
	if !validRepoID(id) {
		return "", fmt.Errorf("%s: %q is not a repository id (remove the file to make a new one)", path, id)
	}
	return id, nil
}

// validRepoID: 1 to 64 of a-z, 0-9, '.', '_', '-'.
func validRepoID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}
