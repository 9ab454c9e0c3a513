package thnode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/git-remote-daemon/git-remote-daemon/internal/gitcfg"
	"github.com/git-remote-daemon/git-remote-daemon/internal/xmpp"
	"github.com/git-remote-daemon/git-remote-daemon/internal/xmpppipe"
	"github.com/git-remote-daemon/git-remote-daemon/telehash"
)

// XMPPSettings are a node's XMPP account, from git config:
//
//	remotedaemon.xmppJID              our account (user@domain); the password comes
//	                                  from git's credential helpers (protocol=xmpp)
//	remotedaemon.xmppServer           host:port (default: SRV records, else domain:5222)
//	remotedaemon.xmppTLS              starttls (default), direct-tls, or plaintext
//	remotedaemon.xmppCA               PEM file of a CA to trust besides the system's
//	remotedaemon.xmppAllowPlaintext   true permits xmppTLS=plaintext, to a loopback
//	                                  server only (tests)
//
// and the pins: the nodes the xmpp:: remotes name.
type XMPPSettings struct {
	JID, Server, CA string
	TLS             xmpp.TLSMode
	AllowPlaintext  bool
	Pins            []xmpppipe.Pin
}

// ErrNoXMPPAccount is returned when xmpp:: remotes exist but
// remotedaemon.xmppJID is not set.
var ErrNoXMPPAccount = errors.New("remotedaemon.xmppJID is not set: the node has no XMPP account to reach xmpp:: remotes with")

// ReadXMPPSettings reads the account and pins the xmpp:: remotes of cfg
// (and extra nodes, for git-remote-xmpp's clone) need; ok is false when
// there is no xmpp:: remote.
func ReadXMPPSettings(cfg *gitcfg.Config, extra ...Addr) (x XMPPSettings, ok bool, err error) {
	seen := map[xmpppipe.Pin]bool{}
	add := func(a Addr) {
		p := xmpppipe.Pin{JID: a.XMPP, Hashname: a.Hashname}
		if !seen[p] {
			seen[p] = true
			x.Pins = append(x.Pins, p)
		}
	}
	for _, p := range xmppPeers(cfg) {
		add(p.addr)
	}
	for _, a := range extra {
		if a.XMPP != "" {
			add(a)
		}
	}
	if len(x.Pins) == 0 {
		return x, false, nil
	}
	sort.Slice(x.Pins, func(i, j int) bool {
		return x.Pins[i].JID+string(x.Pins[i].Hashname) < x.Pins[j].JID+string(x.Pins[j].Hashname)
	})
	x.JID, _ = cfg.Get("remotedaemon.xmppjid")
	if x.JID == "" {
		return x, true, ErrNoXMPPAccount
	}
	if !validJID(x.JID) {
		return x, true, fmt.Errorf("remotedaemon.xmppJID %q is not user@domain", x.JID)
	}
	x.Server, _ = cfg.Get("remotedaemon.xmppserver")
	x.CA, _ = cfg.Get("remotedaemon.xmppca")
	mode, _ := cfg.Get("remotedaemon.xmpptls")
	if x.TLS, err = xmpp.ParseTLSMode(mode); err != nil {
		return x, true, fmt.Errorf("remotedaemon.xmppTLS: %w", err)
	}
	if x.AllowPlaintext, err = cfg.Bool("remotedaemon.xmppallowplaintext", false); err != nil {
		return x, true, fmt.Errorf("remotedaemon.xmppAllowPlaintext: %w", err)
	}
	if x.TLS == xmpp.Plaintext {
		if !x.AllowPlaintext {
			return x, true, errors.New("remotedaemon.xmppTLS=plaintext needs remotedaemon.xmppAllowPlaintext=true (loopback tests only)")
		}
		if !loopbackServer(x.Server) {
			return x, true, fmt.Errorf("remotedaemon.xmppTLS=plaintext: only to a server on a loopback address, not %q", x.Server)
		}
	}
	return x, true, nil
}

func loopbackServer(server string) bool {
	host, _, err := net.SplitHostPort(server)
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// key is what a change of restarts the node's XMPP session for.
func (x XMPPSettings) key() string {
	if x.JID == "" {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s|%s|%s|%s|%v", x.JID, x.Server, x.CA, x.TLS, x.AllowPlaintext)
	for _, p := range x.Pins {
		b.WriteString("|" + p.JID + "=" + string(p.Hashname))
	}
	return b.String()
}

// AttachXMPP logs the node in to its XMPP account (password from git's
// credential helpers, run in dir) and makes every pinned node online in
// presence a path of the mesh; the session ends when the node closes.
func (n *Node) AttachXMPP(ctx context.Context, x XMPPSettings, dir string, log *slog.Logger) (*xmpppipe.Bridge, error) {
	if log == nil {
		log = n.log
	}
	b, err := xmpppipe.New(ctx, xmpppipe.Config{
		Session: xmpp.Config{JID: x.JID, Server: x.Server, TLS: x.TLS, CAFile: x.CA, AllowPlaintext: x.AllowPlaintext,
			PasswordFunc: xmpp.GitCredential{Dir: dir}.Fill, Logger: log},
		Mesh: n.Mesh, Pins: x.Pins, Logger: log,
		OnPeer: func(hn telehash.Hashname, jid string, online bool) {
			log.Debug("xmpp: pinned node", "jid", jid, "hashname", hn, "online", online)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("xmpp account %s: %w", x.JID, err)
	}
	context.AfterFunc(n.ctx, func() { _ = b.Close() })
	return b, nil
}

// WaitOnline waits until the node hn is online on b (its presence seen
// and its hashname the pinned one); false when ctx ends first.
func WaitOnline(ctx context.Context, b *xmpppipe.Bridge, hn telehash.Hashname) bool {
	for b.Online()[hn] == "" {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(20 * time.Millisecond):
		}
	}
	return true
}

// attachXMPP gives a node the service hosts its repository's XMPP
// account, when it has xmpp:: remotes. A login that fails is logged: the
// node serves its other paths, and the session is tried again at the
// next start or RELOAD.
func (s *Service) attachXMPP(ctx context.Context, node *Node, r *running) {
	if r.key.xmpp == "" {
		return
	}
	cfg, err := s.opts.ReadConfig(ctx, s.opts.Dir)
	if err != nil {
		s.log.Error("xmpp: reading the configuration", "err", err)
		return
	}
	x, ok, err := ReadXMPPSettings(cfg)
	if !ok || err != nil {
		s.log.Error("xmpp: settings", "err", err)
		return
	}
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := node.AttachXMPP(lctx, x, s.opts.Dir, s.log); err != nil {
		s.log.Error("xmpp: cannot log in; xmpp:: remotes are unreachable until the next RELOAD", "err", err)
		return
	}
	s.log.Info("xmpp: logged in", "jid", x.JID, "pinned", len(x.Pins))
}

// OtherNodes are the hashnames that nodes of addr's account present in
// presence other than the pinned one (a changed key, or another device).
func OtherNodes(b *xmpppipe.Bridge, addr Addr) []telehash.Hashname {
	var out []telehash.Hashname
	for _, p := range b.Session().Peers() {
		if bareJID(p.JID) == addr.XMPP && p.Online && p.Node.Hashname != string(addr.Hashname) {
			out = append(out, telehash.Hashname(p.Node.Hashname))
		}
	}
	return out
}

func bareJID(s string) string {
	j, err := jid.Parse(s)
	if err != nil {
		return ""
	}
	return j.Bare().String()
}
