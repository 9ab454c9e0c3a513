package gitcfg

import (
	"fmt"
	"reflect"
	"strings"
)

// Action is what the daemon does when a remote changes
// (remote.<name>.daemonAction).
type Action string

// The actions.
const (
	// ActionFetch runs `git fetch <remote>` (the default).
	ActionFetch Action = "fetch"
	// ActionPull fetches, then fast-forwards the local branches that track
	// the remote; a diverged branch is reported and left alone.
	ActionPull Action = "pull"
	// ActionNone only reports the change.
	ActionNone Action = "none"
)

// ParseAction parses a daemonAction value.
func ParseAction(v string) (Action, error) {
	switch a := Action(strings.ToLower(strings.TrimSpace(v))); a {
	case ActionFetch, ActionPull, ActionNone:
		return a, nil
	}
	return "", fmt.Errorf("bad daemonAction %q (want fetch, pull or none)", v)
}

// Remote is one configured remote and the daemon's settings for it.
type Remote struct {
	Name string
	// URL is the fetch URL after url.<base>.insteadOf.
	URL string
	// Watch is remote.<name>.daemonWatch (default true).
	Watch bool
	// Action is remote.<name>.daemonAction (default fetch).
	Action Action
	// Push is remote.<name>.daemonPush (default false): local ref changes
	// are pushed to the remote.
	Push bool
	// AllowPush is remote.<name>.daemonAllowPush (default false): the
	// th:: nodes this remote names may push to the repository (git
	// receive-pack); otherwise they may only fetch and watch it. It
	// governs what the repository's node serves, not how the remote is
	// watched, so it is left out of Settings and Equal: changing it takes
	// effect at once (see thnode) without restarting the remote.
	AllowPush bool
	// Settings holds every remote.<name>.* key with its values, so that a
	// change to any of them (url, fetch, uploadpack, ...) restarts the
	// remote on RELOAD. Keys are lowercase.
	Settings map[string][]string
	// Err is set when the remote's configuration is invalid; such a
	// remote is reported, not watched.
	Err error
}

// Equal reports whether two remotes have the same settings.
func (r Remote) Equal(o Remote) bool {
	return r.Name == o.Name && r.URL == o.URL && r.Watch == o.Watch && r.Action == o.Action &&
		r.Push == o.Push && reflect.DeepEqual(r.Settings, o.Settings) && fmt.Sprint(r.Err) == fmt.Sprint(o.Err)
}

// Remotes returns the remotes that have a URL, in the order git lists them.
func (c *Config) Remotes() []Remote {
	var out []Remote
	for _, name := range c.Subsections("remote", "url") {
		out = append(out, c.remote(name))
	}
	return out
}

func (c *Config) remote(name string) Remote {
	key := func(v string) string { return "remote." + name + "." + v }
	r := Remote{Name: name, Action: ActionFetch, Settings: c.Section("remote", name)}
	delete(r.Settings, "daemonallowpush")
	urls := c.GetAll(key("url"))
	if len(urls) == 0 || urls[0] == "" {
		r.Err = ErrNoURL
		return r
	}
	r.URL = c.RewriteURL(urls[0], false)
	var errs []string
	var err error
	if r.Watch, err = c.Bool(key("daemonwatch"), true); err != nil {
		errs = append(errs, err.Error())
	}
	if r.Push, err = c.Bool(key("daemonpush"), false); err != nil {
		errs = append(errs, err.Error())
	}
	if r.AllowPush, err = c.Bool(key("daemonallowpush"), false); err != nil {
		r.AllowPush = false // an unreadable grant grants nothing
		errs = append(errs, err.Error())
	}
	if v, ok := c.Get(key("daemonaction")); ok {
		if r.Action, err = ParseAction(v); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		r.Err = fmt.Errorf("invalid configuration: %s", strings.Join(errs, "; "))
	}
	return r
}
