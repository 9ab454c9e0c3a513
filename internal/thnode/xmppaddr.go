package thnode

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"mellium.im/xmpp/jid"

	"github.com/git-remote-daemon/git-remote-daemon/internal/gitcfg"
	"github.com/git-remote-daemon/git-remote-daemon/internal/transport"
	"github.com/git-remote-daemon/git-remote-daemon/telehash"
)

// XMPPScheme is the git transport prefix of remotes reached over XMPP.
const XMPPScheme = "xmpp::"

// ErrXMPPUnpinned is returned by ParseXMPPURL for a URL that names a
// bare account, with no key: its Addr has only XMPP (and Repo) set. Such
// a remote reaches and authorizes nobody until a first contact
// (git-remote-xmpp, or the daemon watching it) pins the keys of the
// account's nodes online then into the remote's URLs.
var ErrXMPPUnpinned = errors.New("xmpp:: URL names an account without a node's key (not pinned yet)")

// ParseXMPPURL parses an xmpp:: URL, with or without "xmpp::":
//
//	xmpp::<account>?cs3a=<key>[&hn=<hashname>][&repo=<id>]
//	xmpp::<account>[?repo=<id>]    (unpinned: ErrXMPPUnpinned)
//
// <account> is the peer's bare JID (user@domain). The node is the one
// among the account's connected resources whose presence announces the
// hashname of the key: the key pins it (as th:: URLs do), and a node of
// that account presenting another key is refused. hn, when given, must
// be the key's hashname. A resource is refused: servers assign them, so
// a device is named by its key; a remote naming several devices (or
// several accounts) has one URL per node (several remote.<name>.url).
// The result is an Addr with XMPP set to the account.
func ParseXMPPURL(s string) (Addr, error) {
	if len(s) > 4096 {
		return Addr{}, fmt.Errorf("%w: %d bytes", ErrMalformedAddr, len(s))
	}
	s = strings.TrimPrefix(s, XMPPScheme)
	account, query, _ := strings.Cut(s, "?")
	j, err := jid.Parse(account)
	if err != nil || j.Localpart() == "" {
		return Addr{}, fmt.Errorf("%w: xmpp:: account %q is not user@domain", ErrMalformedAddr, clip(account))
	}
	if j.Resourcepart() != "" {
		return Addr{}, fmt.Errorf("%w: xmpp:: account %q names a resource: name the device by its key (cs3a=), servers assign resources", ErrMalformedAddr, clip(account))
	}
	values, err := url.ParseQuery(query)
	if err != nil {
		return Addr{}, fmt.Errorf("%w: %v", ErrMalformedAddr, err)
	}
	hn := values.Get("hn")
	if len(values["hn"]) > 1 {
		return Addr{}, fmt.Errorf("%w: hn given %d times (one URL per node)", ErrMalformedAddr, len(values["hn"]))
	}
	values.Del("hn")
	for k := range values {
		if k == "udp4" || k == "udp6" || k == "xmpp" {
			return Addr{}, fmt.Errorf("%w: parameter %q has no place in an xmpp:: URL", ErrMalformedAddr, k)
		}
	}
	key := values.Get("cs3a")
	if key == "" {
		if hn == "" && len(values) <= 1 && (len(values) == 0 || len(values["repo"]) == 1) {
			repo := values.Get("repo")
			if repo != "" && !validRepoID(repo) {
				return Addr{}, fmt.Errorf("%w: bad repo %q", ErrMalformedAddr, clip(repo))
			}
			return Addr{XMPP: j.Bare().String(), Repo: repo}, ErrXMPPUnpinned
		}
		return Addr{}, fmt.Errorf("%w: xmpp:: URL without the peer node's key (cs3a=...: `git-remote-daemon address` on the peer prints it)", ErrMalformedAddr)
	}
	if hn == "" {
		keys := map[string]string{}
		ims := map[string]string{}
		for k, vs := range values {
			if strings.HasPrefix(k, "cs") && len(k) == 4 && len(vs) == 1 {
				keys[k[2:]] = vs[0]
			}
			if strings.HasPrefix(k, "im") && len(k) == 4 && len(vs) == 1 {
				ims[k[2:]] = vs[0]
			}
		}
		h, err := telehash.HashnameFromParts(keys, ims)
		if err != nil {
			return Addr{}, fmt.Errorf("%w: keys: %v", ErrMalformedAddr, err)
		}
		hn = string(h)
	}
	a, err := ParseAddr(hn + "?" + values.Encode())
	if err != nil {
		return Addr{}, err
	}
	a.XMPP = j.Bare().String()
	return a, nil
}

// XMPPURL renders a node reached through account as an xmpp:: URL.
func XMPPURL(account string, a Addr) string {
	s := XMPPScheme + account + "?cs3a=" + url.QueryEscape(a.Keys[telehash.CS3a.String()])
	if a.Repo != "" {
		s += "&repo=" + a.Repo
	}
	return s
}

// ParseAnyURL parses a th:: or an xmpp:: URL.
func ParseAnyURL(s string) (Addr, error) {
	if transport.Classify(s) == transport.XMPP {
		return ParseXMPPURL(s)
	}
	return ParseAddr(s)
}

func validJID(s string) bool {
	j, err := jid.Parse(s)
	return err == nil && j.Localpart() != ""
}

// xmppPeers returns the nodes named by the xmpp:: remotes' URLs, each
// with its remote; malformed ones are left out.
func xmppPeers(cfg *gitcfg.Config) []thPeer {
	var out []thPeer
	for _, r := range cfg.Remotes() {
		for _, u := range cfg.GetAll("remote." + r.Name + ".url") {
			u = cfg.RewriteURL(u, false)
			if transport.Classify(u) != transport.XMPP {
				continue
			}
			if a, err := ParseXMPPURL(u); err == nil {
				out = append(out, thPeer{addr: a, remote: r})
			}
		}
	}
	return out
}
