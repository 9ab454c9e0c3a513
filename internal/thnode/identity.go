package thnode

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/git-remote-daemon/git-remote-daemon/internal/gitcfg"
	"github.com/git-remote-daemon/git-remote-daemon/telehash"
)

// IdentityPath is where the user's identity lives:
// $XDG_CONFIG_HOME/git-remote-daemon/th-id.json (~/.config by default).
func IdentityPath() (string, error) {
	dir := os.Getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "git-remote-daemon", "th-id.json"), nil
}

// identityPathFor is the identity a repository uses on telehash: the
// user's, or with remotedaemon.thIdentity=repository its own under the
// repository's common git directory. commonDir "" means no repository
// (the user's identity).
func identityPathFor(cfg *gitcfg.Config, commonDir string) (string, error) {
	if commonDir != "" {
		switch v, _ := cfg.Get("remotedaemon.thidentity"); v {
		case "repository":
			return filepath.Join(commonDir, "remote-daemon", "th-id.json"), nil
		case "", "user":
		default:
			return "", fmt.Errorf("remotedaemon.thIdentity: %q is neither user nor repository", v)
		}
	}
	return IdentityPath()
}

// IdentityFor loads (creating) the identity a repository uses on
// telehash (see identityPathFor).
func IdentityFor(cfg *gitcfg.Config, commonDir string) (*telehash.Identity, error) {
	path, err := identityPathFor(cfg, commonDir)
	if err != nil {
		return nil, err
	}
	return LoadOrCreate(path)
}

// LoadOrCreate loads the identity at path, creating it (0600, in a 0700
// directory) when there is none. Of processes creating it at once (a
// daemon starting and `address` run right after it), the first to link
// its file in place wins and the others load the winner's: none goes on
// with a key that is not on disk.
func LoadOrCreate(path string) (*telehash.Identity, error) {
	id, err := telehash.LoadIdentity(path)
	if err == nil {
		return id, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	id, err = telehash.GenerateIdentity(rand.Reader)
	if err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".new-id-*.json")
	if err != nil {
		return nil, fmt.Errorf("creating identity: %w", err)
	}
	_ = tmp.Close()
	defer os.Remove(tmp.Name())
	if err := id.Save(tmp.Name()); err != nil {
		return nil, err
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, os.ErrExist) {
			return telehash.LoadIdentity(path)
		}
		// A file system without hard links: rename (not exclusive).
		if err := os.Rename(tmp.Name(), path); err != nil {
			return nil, fmt.Errorf("creating identity: %w", err)
		}
	}
	return id, nil
}
