package thnode

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/internal/gitcfg"
	"github.com/git-remote-daemon/git-remote-daemon/internal/transport"
)

// NodeEnv names the node git-remote-th should fetch from, among the
// remote's URLs: the daemon sets it to the node whose change it acts on.
const NodeEnv = "GIT_REMOTE_TH_NODE"

// thPeer is a node named by one of a remote's th:: URLs.
type thPeer struct {
	addr   Addr
	remote gitcfg.Remote
}

// thPeers returns the nodes named by the th:: remotes' URLs (after
// url.<base>.insteadOf), each with its remote; malformed ones are left
// out.
func thPeers(cfg *gitcfg.Config) []thPeer {
	var out []thPeer
	for _, r := range cfg.Remotes() {
		for _, u := range cfg.GetAll("remote." + r.Name + ".url") {
			u = cfg.RewriteURL(u, false)
			if transport.Classify(u) != transport.TH {
				continue
			}
			if a, err := ParseAddr(u); err == nil {
				out = append(out, thPeer{addr: a, remote: r})
			}
		}
	}
	return out
}

// thRemotes returns the nodes named by the th:: remotes' URLs.
func thRemotes(cfg *gitcfg.Config) []Addr {
	var out []Addr
	for _, p := range thPeers(cfg) {
		out = append(out, p.addr)
	}
	return out
}

// listenAddr is the UDP address the repository's node binds:
// remotedaemon.thListen when set (the node then serves the repository
// there); else, when a th:: remote exists (to watch it), an ephemeral
// port on loopback for loopback peers only, on all interfaces otherwise.
// ok is false when no node is needed.
func listenAddr(cfg *gitcfg.Config) (listen string, ok bool) {
	if v, _ := cfg.Get("remotedaemon.thlisten"); v != "" {
		return v, true
	}
	remotes := thRemotes(cfg)
	if len(remotes) == 0 {
		return "", false
	}
	listen = "127.0.0.1:0"
	for _, a := range remotes {
		if ListenFor(a) != listen {
			listen = "0.0.0.0:0"
		}
	}
	return listen, true
}

// ListenFor picks the local address to bind for reaching addr: loopback
// for a loopback peer, all interfaces otherwise.
func ListenFor(addr Addr) string {
	for _, p := range addr.Paths {
		if !p.Addr().IsLoopback() {
			return "0.0.0.0:0"
		}
	}
	return "127.0.0.1:0"
}

// ListenPaths turns a listen address into the paths others use: an
// unspecified host (":4242", "0.0.0.0:4242") means every IPv4 address of
// this machine's interfaces.
func ListenPaths(listen string) ([]netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, err
	}
	if host = strings.TrimSpace(host); host == "" {
		host = "0.0.0.0"
	}
	ap, err := netip.ParseAddrPort(net.JoinHostPort(host, port))
	if err != nil {
		return nil, err
	}
	if ap.Port() == 0 {
		return nil, fmt.Errorf("%s: a fixed port is needed for others to reach this node", listen)
	}
	if !ap.Addr().IsUnspecified() {
		return []netip.AddrPort{ap}, nil
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	var out []netip.AddrPort
	for _, a := range addrs {
		if pfx, err := netip.ParsePrefix(a.String()); err == nil && pfx.Addr().Is4() {
			out = append(out, netip.AddrPortFrom(pfx.Addr(), ap.Port()))
		}
	}
	return out, nil
}

// LinkTimeout is remotedaemon.thLinkTimeout, the wait for a node that
// does not answer (an unauthorized node gets no answer at all); 0 when
// unset (the mesh's default).
func LinkTimeout(cfg *gitcfg.Config) (time.Duration, error) {
	v, ok := cfg.Get("remotedaemon.thlinktimeout")
	if !ok {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("remotedaemon.thLinkTimeout: bad duration %q", v)
	}
	return d, nil
}
