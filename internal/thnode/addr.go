// th:: addresses: the address of a node in a th:: URL: what
// `git-remote-daemon address` prints and what `git clone th::...` and
// `git remote add` take.
//
//	th::<hashname>                               reached once it links to us
//	th::<hashname>?cs3a=<key>&udp4=<ip>:<port>   reachable directly
//
// The hashname (52 base32 characters) names the node; cs3a is its cipher
// set 3a public key (base32), which the hashname is checked against; each
// udp4 parameter is a path the node listens on; repo names one of the
// repositories the node serves (see RepoID), for a peer that several of
// them allow. The form mirrors
// telehash-js's link URIs (`link://ip:port?cs3a=...`).
package thnode

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"sort"
	"strings"

	"github.com/git-remote-daemon/git-remote-daemon/telehash"
)

// Scheme is the git transport prefix ("th::").
const Scheme = "th::"

// ErrMalformedAddr is wrapped by every parse error.
var ErrMalformedAddr = errors.New("malformed th:: address")

// Addr is one node's address.
type Addr struct {
	Hashname telehash.Hashname
	// Keys maps a cipher set id ("3a") to the base32 public key.
	Keys map[string]string
	// Paths are the UDP endpoints the node listens on.
	Paths []netip.AddrPort
	// Repo names the repository asked for among those the node serves
	// ("": the one that allows us).
	Repo string
}

// ParseAddr parses a th:: URL, with or without the "th::" prefix.
func ParseAddr(s string) (Addr, error) {
	var a Addr
	if len(s) > 4096 {
		return a, fmt.Errorf("%w: %d bytes", ErrMalformedAddr, len(s))
	}
	s = strings.TrimPrefix(s, Scheme)
	hn, query, _ := strings.Cut(s, "?")
	h, err := telehash.ParseHashname(hn)
	if err != nil {
		return a, fmt.Errorf("%w: hashname %q: %v", ErrMalformedAddr, clip(hn), err)
	}
	a.Hashname = h
	if query == "" {
		return a, nil
	}
	values, err := url.ParseQuery(query)
	if err != nil {
		return a, fmt.Errorf("%w: %v", ErrMalformedAddr, err)
	}
	for k, vs := range values {
		switch {
		case k == "udp4":
			for _, v := range vs {
				ap, err := netip.ParseAddrPort(v)
				if err != nil || !ap.Addr().Is4() || ap.Port() == 0 {
					return a, fmt.Errorf("%w: udp4 %q is not ip:port", ErrMalformedAddr, clip(v))
				}
				a.Paths = append(a.Paths, ap)
			}
		case k == "repo":
			if len(vs) != 1 || !validRepoID(vs[0]) {
				return a, fmt.Errorf("%w: repo %q is not 1 to 64 of a-z, 0-9, '.', '_', '-'", ErrMalformedAddr, clip(strings.Join(vs, ",")))
			}
			a.Repo = vs[0]
		case strings.HasPrefix(k, "cs") && len(k) == 4:
			if len(vs) != 1 {
				return a, fmt.Errorf("%w: %s given %d times", ErrMalformedAddr, k, len(vs))
			}
			if _, err := telehash.ParseCSID(k[2:]); err != nil {
				return a, fmt.Errorf("%w: %s: %v", ErrMalformedAddr, k, err)
			}
			if _, err := telehash.Base32Decode(vs[0]); err != nil {
				return a, fmt.Errorf("%w: %s key: %v", ErrMalformedAddr, k, err)
			}
			if a.Keys == nil {
				a.Keys = map[string]string{}
			}
			a.Keys[k[2:]] = vs[0]
		default:
			return a, fmt.Errorf("%w: unknown parameter %q", ErrMalformedAddr, clip(k))
		}
	}
	sort.Slice(a.Paths, func(i, j int) bool { return a.Paths[i].String() < a.Paths[j].String() })
	if len(a.Keys) > 0 {
		got, err := telehash.HashnameFromBase32Keys(a.Keys)
		if err != nil {
			return a, fmt.Errorf("%w: keys: %v", ErrMalformedAddr, err)
		}
		if got != a.Hashname {
			return a, fmt.Errorf("%w: the keys belong to %s, not %s", ErrMalformedAddr, got, a.Hashname)
		}
	}
	return a, nil
}

// String renders the address as a th:: URL, keys and paths in a fixed
// order, so that the same node always prints the same URL.
func (a Addr) String() string {
	var q []string
	csids := make([]string, 0, len(a.Keys))
	for c := range a.Keys {
		csids = append(csids, c)
	}
	sort.Strings(csids)
	for _, c := range csids {
		q = append(q, "cs"+c+"="+a.Keys[c])
	}
	for _, p := range a.Paths {
		q = append(q, "udp4="+p.String())
	}
	if a.Repo != "" {
		q = append(q, "repo="+a.Repo)
	}
	s := Scheme + string(a.Hashname)
	if len(q) > 0 {
		s += "?" + strings.Join(q, "&")
	}
	return s
}

// Reachable reports whether the address carries what a direct link
// needs: a key and a path.
func (a Addr) Reachable() bool { return len(a.Keys) > 0 && len(a.Paths) > 0 }

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
