// Package gitcfg reads a repository's configuration the way git sees it,
// by asking git itself (`git config --list`, so includes, includeIf and every
// config file apply), and extracts the remotes and the daemon's settings.
package gitcfg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/git-remote-daemon/git-remote-daemon/internal/gitexec"
)

// Config is a parsed `git config -z --list`: every key, lowercased in its
// section and variable parts as git prints them, with its values in order.
type Config struct {
	values map[string][]string
	order  []string
}

// Read runs `git config -z --list` in the repository at dir.
func Read(ctx context.Context, dir string) (*Config, error) {
	out, err := gitexec.Output(ctx, dir, nil, "config", "-z", "--list")
	if err != nil {
		return nil, fmt.Errorf("in %s: %w", dir, err)
	}
	return Parse(out)
}

// Parse parses the output of `git config -z --list`: entries separated by
// NUL, each "key\nvalue", or "key" alone for a key given without "=".
func Parse(out []byte) (*Config, error) {
	c := &Config{values: map[string][]string{}}
	for _, entry := range bytes.Split(out, []byte{0}) {
		if len(entry) == 0 {
			continue
		}
		key, value, hasValue := bytes.Cut(entry, []byte{'\n'})
		k := string(key)
		if k == "" || strings.ContainsAny(k, " \t") {
			return nil, fmt.Errorf("git config: malformed key %q", k)
		}
		v := string(value)
		if !hasValue {
			v = noValue
		}
		if _, ok := c.values[k]; !ok {
			c.order = append(c.order, k)
		}
		c.values[k] = append(c.values[k], v)
	}
	return c, nil
}

// noValue marks a key given without "=", which git reads as boolean true.
// It cannot come from git's output, which never holds a NUL in a value.
const noValue = "\x00"

// Get returns the last value of key, as git does for single-valued keys.
func (c *Config) Get(key string) (string, bool) {
	vs := c.values[key]
	if len(vs) == 0 {
		return "", false
	}
	v := vs[len(vs)-1]
	if v == noValue {
		return "", true
	}
	return v, true
}

// GetAll returns every value of key in order.
func (c *Config) GetAll(key string) []string {
	var out []string
	for _, v := range c.values[key] {
		if v == noValue {
			v = ""
		}
		out = append(out, v)
	}
	return out
}

// Bool returns key as a git boolean, def when unset.
func (c *Config) Bool(key string, def bool) (bool, error) {
	vs := c.values[key]
	if len(vs) == 0 {
		return def, nil
	}
	v := vs[len(vs)-1]
	if v == noValue {
		return true, nil
	}
	b, err := ParseBool(v)
	if err != nil {
		return def, fmt.Errorf("%s: %w", key, err)
	}
	return b, nil
}

// ParseBool parses a git boolean: yes/on/true/1 and no/off/false/0/"",
// case-insensitively.
func ParseBool(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "true", "yes", "on", "1":
		return true, nil
	case "false", "no", "off", "0", "":
		return false, nil
	}
	return false, fmt.Errorf("bad boolean value %q", v)
}

// Subsections returns the distinct subsection names of section that have
// key set, in the order git listed them. For section "remote" and key
// "url" these are the remote names.
func (c *Config) Subsections(section, key string) []string {
	seen := map[string]bool{}
	var out []string
	prefix := section + "."
	suffix := "." + key
	for _, k := range c.order {
		if !strings.HasPrefix(k, prefix) || !strings.HasSuffix(k, suffix) || len(k) <= len(prefix)+len(suffix) {
			continue
		}
		name := k[len(prefix) : len(k)-len(suffix)]
		if !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	return out
}

// Section returns every key under "section.sub." with its values; the keys
// are returned without that prefix and sorted. It is what a remote's
// settings are compared by on RELOAD.
func (c *Config) Section(section, sub string) map[string][]string {
	prefix := section + "." + sub + "."
	out := map[string][]string{}
	for k, vs := range c.values {
		if strings.HasPrefix(k, prefix) && !strings.Contains(k[len(prefix):], ".") {
			out[k[len(prefix):]] = append([]string(nil), vs...)
		}
	}
	return out
}

// Keys returns all keys in the order git listed them.
func (c *Config) Keys() []string { return append([]string(nil), c.order...) }

// RewriteURL applies url.<base>.insteadOf (or pushInsteadOf when push is
// set) to u: the longest matching prefix wins, as in git's remote.c.
func (c *Config) RewriteURL(u string, push bool) string {
	key := "insteadof"
	if push {
		key = "pushinsteadof"
	}
	best, bestLen := "", -1
	bases := c.Subsections("url", key)
	sort.Strings(bases) // deterministic on ties
	for _, base := range bases {
		for _, prefix := range c.GetAll("url." + base + "." + key) {
			if strings.HasPrefix(u, prefix) && len(prefix) > bestLen {
				best, bestLen = base, len(prefix)
			}
		}
	}
	if bestLen < 0 {
		return u
	}
	return best + u[bestLen:]
}

// ErrNoURL is returned for a remote without a URL.
var ErrNoURL = errors.New("remote has no url")
