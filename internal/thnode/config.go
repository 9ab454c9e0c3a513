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
// port on loopback for loopback peers only, on all interfaces otherwise
// (IPv6 too, dual stack, when a peer has a udp6 path). ok is false when
// no node is needed.
func listenAddr(cfg *gitcfg.Config) (listen string, ok bool) {
	if v, _ := cfg.Get("remotedaemon.thlisten"); v != "" {
		return v, true
	}
	remotes := thRemotes(cfg)
	if len(remotes) == 0 {
		if len(xmppPeers(cfg)) > 0 { // xmpp:: remotes only: the node's UDP port serves no one
			return "127.0.0.1:0", true
		}
		return "", false
	}
	var paths []netip.AddrPort
	for _, a := range remotes {
		paths = append(paths, a.Paths...)
	}
	rt, _ := ParseRouting(cfg) // the routers must be reachable too
	for _, a := range rt.Routers {
		paths = append(paths, a.Paths...)
	}
	return listenFor(paths), true
}

// ListenFor picks the local address to bind for reaching addr: loopback
// for a loopback peer, all interfaces otherwise; IPv6 (dual stack, which
// reaches IPv4 peers as well) when a path needs it.
func ListenFor(addr Addr) string { return listenFor(addr.Paths) }

func listenFor(paths []netip.AddrPort) string {
	loopback, v4, v6 := true, false, false
	for _, p := range paths {
		loopback = loopback && p.Addr().IsLoopback()
		v4 = v4 || p.Addr().Is4()
		v6 = v6 || p.Addr().Is6()
	}
	switch {
	case loopback && (v4 || !v6):
		return "127.0.0.1:0"
	case loopback && !v4:
		return "[::1]:0"
	case v6:
		return "[::]:0"
	}
	return "0.0.0.0:0"
}

// ListenPaths turns a listen address into the paths others use: an
// unspecified IPv4 host (":4242", "0.0.0.0:4242") means every IPv4
// address of this machine's interfaces; "[::]:4242" (dual stack) every
// IPv4 and IPv6 one, link-local IPv6 addresses left out (they need a
// zone).
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
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	if ap.Port() == 0 {
		return nil, fmt.Errorf("%s: a fixed port is needed for others to reach this node", listen)
	}
	if ap.Addr().Zone() != "" {
		return nil, fmt.Errorf("%s: a zoned address cannot go in a th:: URL", listen)
	}
	if !ap.Addr().IsUnspecified() {
		return []netip.AddrPort{ap}, nil
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	return interfacePaths(addrs, ap.Addr().Is6(), ap.Port()), nil
}

// interfacePaths are the paths of a port bound on every interface: the
// IPv4 addresses, and the IPv6 ones but link-local when v6 is set.
func interfacePaths(addrs []net.Addr, v6 bool, port uint16) []netip.AddrPort {
	var out []netip.AddrPort
	for _, a := range addrs {
		pfx, err := netip.ParsePrefix(a.String())
		if err != nil {
			continue
		}
		ip := pfx.Addr().Unmap()
		if ip.Is4() || (v6 && !ip.IsLinkLocalUnicast() && ip.Zone() == "") {
			out = append(out, netip.AddrPortFrom(ip, port))
		}
	}
	return out
}

// AdvertisedAddrs are the URLs that `git-remote-daemon address` prints
// for a node (base: hashname and keys) listening on paths: the loopback
// paths (127.0.0.1 and ::1) together in one, then one per other IPv4
// address with every other IPv6 one (a peer tries them all), or one with
// the IPv6 ones alone when there is no other IPv4 address.
func AdvertisedAddrs(base Addr, paths []netip.AddrPort) []Addr {
	var loop, v4, v6 []netip.AddrPort
	for _, p := range paths {
		switch {
		case p.Addr().IsLoopback():
			loop = append(loop, p)
		case p.Addr().Is4():
			v4 = append(v4, p)
		default:
			v6 = append(v6, p)
		}
	}
	var out []Addr
	with := func(ps ...netip.AddrPort) {
		a := base
		a.Paths = ps
		out = append(out, a)
	}
	if len(loop) > 0 {
		with(loop...)
	}
	for _, p := range v4 {
		with(append([]netip.AddrPort{p}, v6...)...)
	}
	if len(v4) == 0 && len(v6) > 0 {
		with(v6...)
	}
	if len(out) == 0 {
		out = append(out, base)
	}
	return out
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
