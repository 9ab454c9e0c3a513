// th:: addresses: the address of a node in a th:: URL: what
// `git-remote-daemon address` prints and what `git clone th::...` and
// `git remote add` take.
//
//	th::<hashname>                                       reached once it links to us
//	th::<hashname>?cs3a=<key>&udp4=<ip>:<port>           reachable directly
//	th::<hashname>?cs3a=<key>&udp6=[<ip6>]:<port>        the same over IPv6
//	th::<hashname>?cs3a=<key>&im1a=<digest>&im2a=<digest>&udp4=...
//	th::<hashname>?cs3a=<key>&router=<hashname>        reached through a router
//
// The hashname (52 base32 characters) names the node; each cs<id>
// parameter is the node's public key of that cipher set (base32), and
// each im<id> the intermediate digest of a cipher set key left out
// (base32 SHA-256 of the key, 52 characters; telehash hashname.md): the
// hashname is checked against keys and digests together. A node with
// several cipher sets (telehash-js ids have 1a, 2a and 3a; the 2a RSA
// key alone is 400 characters) is named by its cs3a key, the only one
// used here, and the digests of the others: `git-remote-daemon address`
// prints that shortest form (a key shorter than its digest, such as a
// 1a key, stays a key). Each udp4 or udp6 parameter is a path the node
// listens on; an IPv4-mapped IPv6 address is taken as udp4, and zones
// are refused. Each router parameter (repeatable) names, by hashname, a
// router the node keeps a link to (remotedaemon.thRouters): a peer that
// uses the same router reaches the node through it, with no path at all
// (the node may be behind a NAT). repo names one of the repositories the node serves (see
// RepoID), for a peer that several of them allow. The form mirrors telehash-js's link URIs
// (`link://ip:port?cs3a=...`).
package thnode

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
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
	// Intermediates maps a cipher set id to the base32 intermediate
	// digest of a key not in Keys (URL parameter im<id>).
	Intermediates map[string]string
	// Paths are the UDP endpoints (IPv4 or IPv6) the node listens on.
	Paths []netip.AddrPort
	// Routers are the hashnames of routers the node is reached through
	// (URL parameter router, repeatable).
	Routers []telehash.Hashname
	// Repo names the repository asked for among those the node serves
	// ("": the one that allows us).
	Repo string
	// XMPP is the account whose presence carries the node (an xmpp::
	// remote; URL parameter xmpp): the node is reached over the XMPP
	// pipe of that account's pinned node, not over UDP.
	XMPP string
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
		case k == "udp4" || k == "udp6":
			for _, v := range vs {
				ap, err := parsePath(k, v)
				if err != nil {
					return a, err
				}
				a.Paths = append(a.Paths, ap)
			}
		case strings.HasPrefix(k, "im") && len(k) == 4:
			if len(vs) != 1 {
				return a, fmt.Errorf("%w: %s given %d times", ErrMalformedAddr, k, len(vs))
			}
			if _, err := telehash.ParseCSID(k[2:]); err != nil {
				return a, fmt.Errorf("%w: %s: %v", ErrMalformedAddr, k, err)
			}
			if b, err := telehash.Base32Decode(vs[0]); err != nil || len(b) != 32 {
				return a, fmt.Errorf("%w: %s is not a base32 SHA-256 digest", ErrMalformedAddr, k)
			}
			if a.Intermediates == nil {
				a.Intermediates = map[string]string{}
			}
			a.Intermediates[k[2:]] = vs[0]
		case k == "xmpp":
			if len(vs) != 1 || !validJID(vs[0]) {
				return a, fmt.Errorf("%w: xmpp %q is not an XMPP address", ErrMalformedAddr, clip(strings.Join(vs, ",")))
			}
			a.XMPP = vs[0]
		case k == "router":
			for _, v := range vs {
				h, err := telehash.ParseHashname(v)
				if err != nil {
					return a, fmt.Errorf("%w: router %q: %v", ErrMalformedAddr, clip(v), err)
				}
				if h == a.Hashname {
					return a, fmt.Errorf("%w: the node cannot be its own router", ErrMalformedAddr)
				}
				if !slices.Contains(a.Routers, h) {
					a.Routers = append(a.Routers, h)
				}
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
	slices.Sort(a.Routers)
	if len(a.Intermediates) > 0 && len(a.Keys) == 0 {
		return a, fmt.Errorf("%w: intermediate digests without a key", ErrMalformedAddr)
	}
	if len(a.Keys) > 0 {
		got, err := telehash.HashnameFromParts(a.Keys, a.Intermediates)
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
	csids = csids[:0]
	for c := range a.Intermediates {
		csids = append(csids, c)
	}
	sort.Strings(csids)
	for _, c := range csids {
		q = append(q, "im"+c+"="+a.Intermediates[c])
	}
	for _, p := range a.Paths {
		q = append(q, pathType(p)+"="+p.String())
	}
	for _, r := range a.Routers {
		q = append(q, "router="+string(r))
	}
	if a.Repo != "" {
		q = append(q, "repo="+a.Repo)
	}
	if a.XMPP != "" {
		q = append(q, "xmpp="+url.QueryEscape(a.XMPP))
	}
	s := Scheme + string(a.Hashname)
	if len(q) > 0 {
		s += "?" + strings.Join(q, "&")
	}
	return s
}

// Reachable reports whether the address carries what a link needs: a
// cs3a key and a path, a router, or the XMPP account's pipe.
func (a Addr) Reachable() bool {
	return a.Keys[telehash.CS3a.String()] != "" && (len(a.Paths) > 0 || len(a.Routers) > 0 || a.XMPP != "")
}

// Short returns the address with every key but the cs3a one replaced
// by its intermediate digest where the digest is shorter (a 2a RSA key
// is, a 1a key is not): the shortest URL that still links and proves
// the hashname. An address without a cs3a key is returned as it is.
func (a Addr) Short() Addr {
	key3a := a.Keys[telehash.CS3a.String()]
	if key3a == "" {
		return a
	}
	ims, err := telehash.Intermediates(a.Keys)
	if err != nil {
		return a
	}
	out := a // paths, routers and the rest as they are
	out.Keys, out.Intermediates = map[string]string{}, nil
	for c, k := range a.Keys {
		if c == telehash.CS3a.String() || len(k) <= len(ims[c]) {
			out.Keys[c] = k
			continue
		}
		if out.Intermediates == nil {
			out.Intermediates = map[string]string{}
		}
		out.Intermediates[c] = ims[c]
	}
	for c, im := range a.Intermediates {
		if out.Intermediates == nil {
			out.Intermediates = map[string]string{}
		}
		out.Intermediates[c] = im
	}
	return out
}

// LinkInfo is what telehash.Mesh.Link needs to reach the node.
func (a Addr) LinkInfo() telehash.LinkInfo {
	info := telehash.LinkInfo{Keys: a.Keys, Intermediates: a.Intermediates}
	for _, p := range a.Paths {
		info.Paths = append(info.Paths, telehash.Path{Type: pathType(p), IP: p.Addr().String(), Port: int(p.Port())})
	}
	for _, r := range a.Routers {
		info.Paths = append(info.Paths, telehash.Path{Type: "peer", HN: r})
	}
	return info
}

// pathType is "udp4" or "udp6", the URL parameter and telehash path
// type of p.
func pathType(p netip.AddrPort) string {
	if p.Addr().Is4() {
		return "udp4"
	}
	return "udp6"
}

// parsePath parses the value of a udp4 or udp6 parameter: ip:port for
// udp4, [ip6]:port for udp6 (an IPv4-mapped one is unmapped to IPv4).
func parsePath(typ, v string) (netip.AddrPort, error) {
	bad := fmt.Errorf("%w: %s %q is not %s", ErrMalformedAddr, typ, clip(v), map[string]string{"udp4": "ip:port", "udp6": "[ip6]:port"}[typ])
	ap, err := netip.ParseAddrPort(v)
	if err != nil || ap.Port() == 0 || ap.Addr().Zone() != "" {
		return ap, bad
	}
	if typ == "udp4" && !ap.Addr().Is4() {
		return ap, bad
	}
	if typ == "udp6" {
		if !ap.Addr().Is6() {
			return ap, bad
		}
		ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return ap, nil
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
