package pairing

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/git-remote-daemon/git-remote-daemon/internal/gitcfg"
	"github.com/git-remote-daemon/git-remote-daemon/internal/gitexec"
	"github.com/git-remote-daemon/git-remote-daemon/internal/thnode"
	"github.com/git-remote-daemon/git-remote-daemon/internal/transport"
	"github.com/git-remote-daemon/git-remote-daemon/telehash"
)

// ErrRemoteExists is wrapped when the remote name asked for is taken by
// a remote naming another node: a pairing never overwrites a remote.
var ErrRemoteExists = errors.New("remote exists")

// RemoteOptions say how to name the other node.
type RemoteOptions struct {
	// Name is the remote's name; "" takes Suggested when it is a free,
	// valid name, else "th-" and the first 8 characters of the hashname.
	Name      string
	Suggested string
	// AllowPush sets remote.<name>.daemonAllowPush true: the node may
	// push here.
	AllowPush bool
}

// Remote makes the repository in dir name peer: a remote that names it
// already is kept (and given daemonAllowPush when asked), else a new
// remote is added (git remote add). It returns the remote's name.
func Remote(ctx context.Context, dir string, peer thnode.Addr, o RemoteOptions) (string, error) {
	cfg, err := gitcfg.Read(ctx, dir)
	if err != nil {
		return "", err
	}
	name := Naming(cfg, peer)
	if name == "" {
		if name, err = chooseName(cfg, peer.Hashname, o); err != nil {
			return "", err
		}
		if _, err := gitexec.Output(ctx, dir, nil, "remote", "add", "--", name, peer.String()); err != nil {
			return "", err
		}
	}
	if o.AllowPush {
		if _, err := gitexec.Output(ctx, dir, nil, "config", "remote."+name+".daemonAllowPush", "true"); err != nil {
			return name, err
		}
	}
	return name, nil
}

// Naming returns the remote that names peer's node (and repository,
// when both name one) in one of its th:: URLs, or "".
func Naming(cfg *gitcfg.Config, peer thnode.Addr) string {
	for _, r := range cfg.Remotes() {
		for _, u := range cfg.GetAll("remote." + r.Name + ".url") {
			u = cfg.RewriteURL(u, false)
			if transport.Classify(u) != transport.TH {
				continue
			}
			if a, err := thnode.ParseAddr(u); err == nil && a.Hashname == peer.Hashname &&
				(a.Repo == peer.Repo || a.Repo == "" || peer.Repo == "") {
				return r.Name
			}
		}
	}
	return ""
}

// CheckName refuses, before a pairing starts, a remote name that could
// not be added: taken by a remote, or not a valid remote name.
func CheckName(ctx context.Context, dir, name string) error {
	if name == "" {
		return nil
	}
	if err := validName(ctx, name); err != nil {
		return err
	}
	cfg, err := gitcfg.Read(ctx, dir)
	if err != nil {
		return err
	}
	if taken(cfg, name) {
		return fmt.Errorf("%w: %s (a pairing never overwrites a remote; choose another name)", ErrRemoteExists, name)
	}
	return nil
}

func validName(ctx context.Context, name string) error {
	if strings.HasPrefix(name, "-") || name == "*" {
		return fmt.Errorf("%q is not a valid remote name", name)
	}
	if _, err := gitexec.Output(ctx, "", nil, "check-ref-format", "refs/remotes/"+name+"/x"); err != nil {
		return fmt.Errorf("%q is not a valid remote name", name)
	}
	return nil
}

// taken reports whether any remote.<name>.* key exists.
func taken(cfg *gitcfg.Config, name string) bool {
	return len(cfg.Section("remote", name)) > 0
}

func chooseName(cfg *gitcfg.Config, hn telehash.Hashname, o RemoteOptions) (string, error) {
	if o.Name != "" {
		if taken(cfg, o.Name) {
			return "", fmt.Errorf("%w: %s (a pairing never overwrites a remote; choose another name)", ErrRemoteExists, o.Name)
		}
		return o.Name, nil
	}
	if s := Sanitize(o.Suggested); s != "" && !taken(cfg, s) {
		return s, nil
	}
	name := "th-" + string(hn)[:8]
	if taken(cfg, name) {
		return "", fmt.Errorf("%w: %s; name the remote yourself (--name)", ErrRemoteExists, name)
	}
	return name, nil
}

// Sanitize turns a suggested name (a user name, say) into a remote name
// of lowercase letters, digits and single dashes, at most 32 characters;
// "" when nothing is left.
func Sanitize(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(r)
			if b.Len() >= 32 {
				break
			}
			continue
		}
		dash = true
	}
	return b.String()
}

// Suggestion is the name this side suggests to the other: its git
// user.name, sanitized ("" when unset).
func Suggestion(cfg *gitcfg.Config) string {
	v, _ := cfg.Get("user.name")
	return Sanitize(v)
}
