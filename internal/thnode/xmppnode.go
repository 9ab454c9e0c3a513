package thnode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
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
	// Bytestreams: packets between nodes go over a SOCKS5 bytestream
	// through the server's proxy when it offers one
	// (remotedaemon.xmppBytestreams, default true), else in messages.
	Bytestreams bool
	Pins        []xmpppipe.Pin
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
	if x.Bytestreams, err = cfg.Bool("remotedaemon.xmppbytestreams", true); err != nil {
		return x, true, fmt.Errorf("remotedaemon.xmppBytestreams: %w", err)
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
	fmt.Fprintf(&b, "%s|%s|%s|%s|%v|%v", x.JID, x.Server, x.CA, x.TLS, x.AllowPlaintext, x.Bytestreams)
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
		Mesh: n.Mesh, Pins: x.Pins, Logger: log, NoBytestreams: !x.Bytestreams,
		OnPeer: func(hn telehash.Hashname, jid string, online bool) {
			log.Debug("xmpp: pinned node", "jid", jid, "hashname", hn, "online", online)
			if online {
				n.xmpp.arrived(hn)
			}
			n.xmpp.changed()
			if !online && !n.xmpp.online(hn) {
				// Its presence went: so do its streams, now, not at their
				// keepalive's timeout (a watcher then waits for the node's
				// next presence). The session stays: Unlink would bury it,
				// and a node of that identity starting again within the
				// same second (git-remote-xmpp runs one after another) on
				// a new resource would then be taken for a replay.
				n.abortXMPP(hn)
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("xmpp account %s: %w", x.JID, err)
	}
	n.xmpp.set(b)
	n.xmpp.mu.Lock()
	n.xmpp.settings, n.xmpp.dir, n.xmpp.log = x, dir, log
	n.xmpp.mu.Unlock()
	context.AfterFunc(n.ctx, func() { _ = b.Close() })
	return b, nil
}

// registeredXMPP pins the xmpp:: peers of a repository another daemon
// registered: the nodes its configuration names that the session does
// not pin are added to the live session (no new login: its peers do not
// see our node go, their streams stay). A node with no session yet logs
// in with the registered repository's account.
func (n *Node) registeredXMPP(cfg *gitcfg.Config, dir string) {
	x, ok, err := ReadXMPPSettings(cfg)
	if !ok {
		return
	}
	if err != nil {
		n.log.Warn("xmpp: a registered repository's settings", "dir", dir, "err", err)
		return
	}
	go func() {
		n.xmpp.attach.Lock() // one re-attach at a time
		defer n.xmpp.attach.Unlock()
		if n.ctx.Err() != nil {
			return
		}
		n.xmpp.mu.Lock()
		old, cur, log := n.xmpp.b, n.xmpp.settings, n.xmpp.log
		n.xmpp.mu.Unlock()
		ctx, cancel := context.WithTimeout(n.ctx, 30*time.Second)
		defer cancel()
		if old != nil {
			have := map[xmpppipe.Pin]bool{}
			for _, p := range cur.Pins {
				have[p] = true
			}
			var added []xmpppipe.Pin
			for _, p := range x.Pins {
				if !have[p] {
					added = append(added, p)
				}
			}
			if len(added) == 0 {
				return
			}
			// Pinned from now on, even if the session could not ask the
			// new accounts yet (it does at its next login).
			err := old.AddPins(ctx, added...)
			n.xmpp.mu.Lock()
			n.xmpp.settings.Pins = append(slices.Clone(n.xmpp.settings.Pins), added...)
			n.xmpp.mu.Unlock()
			n.xmpp.changed()
			if err != nil {
				n.log.Warn("xmpp: pinning a registered repository's peers", "err", err)
				return
			}
			n.log.Info("xmpp: pinned a registered repository's peers", "jid", cur.JID, "added", len(added))
			return
		}
		next := x
		if _, err := n.AttachXMPP(ctx, next, dir, log); err != nil {
			n.log.Error("xmpp: cannot log in with the pins of a registered repository", "err", err)
			return
		}
		n.log.Info("xmpp: logged in with a registered repository's account and peers", "jid", next.JID, "pinned", len(next.Pins))
	}()
}

// ErrXMPPOffline is wrapped by a dial to an xmpp:: node whose presence
// is not there (offline, or never shown to us: an account that does not
// name ours).
var ErrXMPPOffline = errors.New("no node with the pinned key is online")

// ErrXMPPNotPinned is wrapped by a dial to an xmpp:: node that the
// node's XMPP session does not pin (no remote of the repository whose
// daemon hosts the node names it), or when the node has no session.
var ErrXMPPNotPinned = errors.New("this node's XMPP session does not pin the node")

// xmppState is a node's XMPP bridge and a signal of its peers' changes.
type xmppState struct {
	mu   sync.Mutex
	b    *xmpppipe.Bridge
	wake chan struct{}
	// dialed are the open streams this node opened to xmpp:: nodes.
	dialed map[telehash.Hashname]map[*telehash.Channel]bool
	// settings, dir and log are those of the session's login.
	settings XMPPSettings
	dir      string
	log      *slog.Logger
	attach   sync.Mutex // registeredXMPP's
	// arrivals are closed when their node shows presence (presence.go).
	arrivals map[telehash.Hashname]chan struct{}
}

// track records a stream opened to hn until it ends.
func (x *xmppState) track(hn telehash.Hashname, c *telehash.Channel) {
	x.mu.Lock()
	if x.dialed == nil {
		x.dialed = map[telehash.Hashname]map[*telehash.Channel]bool{}
	}
	if x.dialed[hn] == nil {
		x.dialed[hn] = map[*telehash.Channel]bool{}
	}
	x.dialed[hn][c] = true
	x.mu.Unlock()
	go func() {
		<-c.Done()
		x.mu.Lock()
		delete(x.dialed[hn], c)
		if len(x.dialed[hn]) == 0 {
			delete(x.dialed, hn)
		}
		x.mu.Unlock()
	}()
}

// ReasonXMPPOffline ends the streams of a node whose presence went (the
// reason a watcher sees).
const ReasonXMPPOffline = "the node went offline"

// xmppOfflineGrace is how long a stream served to a node that went
// offline has to end by itself, once its channel is aborted, before its
// context ends it.
const xmppOfflineGrace = 5 * time.Second

// abortXMPP ends every stream with hn, served or dialed. A served one
// sees its channel fail first: git receive-pack then gets the end of its
// input (helper.Serve), fails the push and removes its quarantine of the
// half-received pack, which ending its context at once (a kill) left in
// objects/.
func (n *Node) abortXMPP(hn telehash.Hashname) {
	for c, st := range n.streams.served(hn) {
		c.Abort(ReasonXMPPOffline)
		time.AfterFunc(xmppOfflineGrace, st.cancel)
	}
	n.xmpp.mu.Lock()
	var cs []*telehash.Channel
	for c := range n.xmpp.dialed[hn] {
		cs = append(cs, c)
	}
	n.xmpp.mu.Unlock()
	for _, c := range cs {
		c.Abort(ReasonXMPPOffline)
	}
}

func (x *xmppState) set(b *xmpppipe.Bridge) {
	x.mu.Lock()
	x.b = b
	x.mu.Unlock()
	x.changed()
}

func (x *xmppState) bridge() *xmpppipe.Bridge {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.b
}

// changed wakes the waiters.
func (x *xmppState) changed() {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.wake != nil {
		close(x.wake)
		x.wake = nil
	}
}

// next returns a channel closed at the next change.
func (x *xmppState) next() <-chan struct{} {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.wake == nil {
		x.wake = make(chan struct{})
	}
	return x.wake
}

func (x *xmppState) online(hn telehash.Hashname) bool {
	b := x.bridge()
	return b != nil && b.Online()[hn] != ""
}

// xmppReady says why addr cannot be linked now: an xmpp:: node while
// the node has no XMPP account, or whose presence is not there.
func (n *Node) xmppReady(addr Addr) error {
	if addr.XMPP == "" {
		return nil
	}
	b := n.xmpp.bridge()
	if b == nil || !b.Pinned(addr.XMPP, addr.Hashname) {
		return fmt.Errorf("%s: %w %s (no xmpp:: remote of the repository whose daemon hosts it names it)", addr.XMPP, ErrXMPPNotPinned, addr.Hashname)
	}
	if !n.xmpp.online(addr.Hashname) {
		return fmt.Errorf("%s: %w (%s)", addr.XMPP, ErrXMPPOffline, addr.Hashname)
	}
	return nil
}

// waitXMPP waits until addr's node is online in presence (or linked);
// false when ctx ends or the node closes first.
func (n *Node) waitXMPP(ctx context.Context, addr Addr) bool {
	for {
		wake := n.xmpp.next()
		if n.xmpp.online(addr.Hashname) || n.Mesh.Up(addr.Hashname) {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-n.ctx.Done():
			return false
		case <-wake:
		case <-time.After(time.Second): // the bridge may come later
		}
	}
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

// xmppLinkContext is ctx, for a link to an xmpp:: node, ended when the
// node's presence goes (its pipe went with it: the handshakes would go
// nowhere). stop releases it and turns such an end into ErrXMPPOffline.
func (n *Node) xmppLinkContext(ctx context.Context, addr Addr) (context.Context, func(error) error) {
	if addr.XMPP == "" {
		return ctx, func(err error) error { return err }
	}
	lctx, cancel := context.WithCancelCause(ctx)
	gone := fmt.Errorf("%s: %w (%s went offline)", addr.XMPP, ErrXMPPOffline, addr.Hashname)
	go func() {
		for lctx.Err() == nil {
			wake := n.xmpp.next()
			if !n.xmpp.online(addr.Hashname) {
				cancel(gone)
				return
			}
			select {
			case <-lctx.Done():
			case <-wake:
			}
		}
	}()
	return lctx, func(err error) error {
		cancel(nil)
		if err != nil && ctx.Err() == nil && errors.Is(context.Cause(lctx), ErrXMPPOffline) {
			return gone
		}
		return err
	}
}
