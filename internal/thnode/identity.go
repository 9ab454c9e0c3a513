package thnode

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

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
// directory) when there is none. Processes starting at once agree on one
// identity: it is created under a lock (path + ".lock"), its absence
// checked again inside, and it appears whole (written aside, then
// linked into place), never replacing an identity that exists.
func LoadOrCreate(path string) (*telehash.Identity, error) {
	id, err := telehash.LoadIdentity(path)
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		return id, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	unlock, err := lockFile(path + ".lock")
	switch {
	case err == nil:
		defer unlock()
	case errors.Is(err, syscall.ENOLCK), errors.Is(err, syscall.EOPNOTSUPP), errors.Is(err, syscall.ENOSYS):
		// A file system without locks (some NFS): the link below still
		// lets one identity win, the others only generated in vain.
	default:
		return nil, fmt.Errorf("locking the identity: %w", err)
	}
	id, err = telehash.LoadIdentity(path) // made while we waited?
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		return id, err
	}
	id, err = telehash.GenerateIdentity(rand.Reader)
	if err != nil {
		return nil, err
	}
	if err := createIdentity(path, id); err != nil {
		if errors.Is(err, os.ErrExist) { // made by a process not taking the lock
			return telehash.LoadIdentity(path)
		}
		return nil, err
	}
	return id, nil
}

// lockFile takes an exclusive lock on the file at path (creating it),
// waiting for a holder to release it. Holders keep it for the few
// milliseconds an identity takes to make.
func lockFile(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil // closing releases the lock
}

// createIdentity writes id to a temporary file next to path, then links
// it to path: the identity appears whole, and an existing one is never
// replaced (the error then wraps os.ErrExist).
func createIdentity(path string, id *telehash.Identity) (err error) {
	data, err := id.MarshalJSON()
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".th-id-*.json")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(telehash.IdentityFileMode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, os.ErrExist) {
			return err
		}
		// A file system without hard links: under the lock, with the
		// identity checked absent, a rename replaces nothing.
		if _, serr := os.Lstat(path); serr == nil {
			return fmt.Errorf("%s: %w", path, os.ErrExist)
		}
		if err := os.Rename(tmp.Name(), path); err != nil {
			return err
		}
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync() // the new name survives a crash
		d.Close()
	}
	return nil
}

// IdentityPathFor is the path of the identity a repository uses (see
// IdentityFor); its host lock is next to it.
func IdentityPathFor(cfg *gitcfg.Config, commonDir string) (string, error) {
	return identityPathFor(cfg, commonDir)
}
