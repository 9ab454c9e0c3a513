// Package xmpppipe makes an XMPP session a path between telehash meshes
// (telehash v3 allows any transport as a path): each peer node, a full
// JID seen in presence with a pinned hashname, becomes a telehash.Pipe
// offered to the mesh, and datagrams from configured accounts are handed
// to Mesh.Receive. The XMPP server relays E3X packets only: it sees
// neither keys' secrets, nor channel contents.
package xmpppipe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/git-remote-daemon/git-remote-daemon/internal/xmpp"
	"github.com/git-remote-daemon/git-remote-daemon/telehash"
)

// Pin binds an account to a node it may present: presence from a
// resource of JID (a bare JID) announcing Hashname makes a pipe; any
// other hashname from that account is refused. An account may have
// several pins (several devices).
type Pin struct {
	JID      string
	Hashname telehash.Hashname
}

// Config configures a Bridge.
type Config struct {
	// Session is the XMPP account; its Node, Peers, OnDatagram and OnPeer
	// are set by the bridge (Peers from Pins, the account's own bare JID
	// excluded).
	Session xmpp.Config
	Mesh    *telehash.Mesh
	Pins    []Pin
	// OnPeer is told when a pinned node comes online or goes offline
	// (after its pipe was added or removed).
	OnPeer func(hn telehash.Hashname, jid string, online bool)
	// OnState is told when the XMPP connection goes up or down.
	OnState func(up bool)
	// NoBytestreams keeps packets in messages: no SOCKS5 bytestream
	// (XEP-0065) through the server's proxy is tried.
	NoBytestreams bool
	Logger        *slog.Logger
}

// Bridge carries a mesh's packets over an XMPP session.
type Bridge struct {
	cfg  Config
	log  *slog.Logger
	sess *xmpp.Session

	mu sync.Mutex
	// pins: bare JID -> hashnames (New's, and AddPins').
	pins map[string]map[telehash.Hashname]bool
	// byHN holds one pipe per pinned node, kept while the node is away
	// (its JID changes when it reconnects: the mesh's path stays the
	// same pipe). byJID routes what arrives from a full JID; it also
	// holds pipes made for datagrams that came before any presence.
	byHN  map[telehash.Hashname]*Pipe
	byJID map[string]*Pipe
	// refused are full JIDs that presented a hashname not pinned for
	// their account: their datagrams are dropped.
	refused map[string]bool
	// ready is closed once sess is set: the session's callbacks may run
	// before Dial returns.
	ready chan struct{}
}

// ErrNodeAway reports a send to a node that is not online.
var ErrNodeAway = errors.New("xmpppipe: node not online")

// Pipe is a peer node as a telehash path: packets go to its current full
// JID, over a SOCKS5 bytestream when one is up, in messages otherwise.
type Pipe struct {
	b  *Bridge
	hn telehash.Hashname // "" for a pipe made for early datagrams
	mu sync.Mutex
	to string // current full JID, "" while away
	fc atomic.Pointer[framed]
	// offered is set (under Bridge.mu) once the mesh has the pipe:
	// Online reports no node before, or a link to it would find no
	// path (git-remote-xmpp polls Online, then links).
	offered bool
	// jids are the full JIDs presenting hn, oldest first (under
	// Bridge.mu): several processes of one identity may be logged in at
	// once (a daemon, and a git-remote-xmpp of its user's), and when the
	// one packets go to leaves, they go to the last other one.
	jids []string
}

var _ telehash.Pipe = (*Pipe)(nil)

func (p *Pipe) target() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.to
}

// Send sends one packet. It blocks while the server is slow to read
// (TCP flow control), a bounded time.
func (p *Pipe) Send(b []byte) error {
	if fc := p.fc.Load(); fc != nil && fc.ready.Load() {
		err := fc.send(b)
		if err == nil {
			return nil
		}
		p.b.log.Info("xmpppipe: bytestream failed, back to messages", "pipe", p, "err", err)
		p.dropStream(fc)
	}
	to := p.target()
	if to == "" {
		return ErrNodeAway
	}
	return p.b.sess.Send(context.Background(), to, b)
}

// Bytestream reports whether packets to the node go over a bytestream.
func (p *Pipe) Bytestream() bool {
	fc := p.fc.Load()
	return fc != nil && fc.ready.Load()
}

// attach makes c the pipe's bytestream and reads it until it ends.
func (p *Pipe) attach(c net.Conn, ready bool) {
	fc := newFramed(c, ready)
	if old := p.fc.Swap(fc); old != nil {
		old.close()
	}
	fc.owner.Store(p)
	go func() {
		err := fc.readLoop(func(pkt []byte) { p.b.cfg.Mesh.Receive(pkt, fc.owner.Load()) })
		p.b.log.Debug("xmpppipe: bytestream ended", "pipe", fc.owner.Load(), "err", err)
		fc.owner.Load().dropStream(fc)
	}()
}

// takeStream moves q's bytestream, if any, to p.
func (p *Pipe) takeStream(q *Pipe) {
	fc := q.fc.Swap(nil)
	if fc == nil {
		return
	}
	fc.owner.Store(p)
	if old := p.fc.Swap(fc); old != nil {
		old.close()
	}
}

func (p *Pipe) dropStream(fc *framed) {
	p.fc.CompareAndSwap(fc, nil)
	fc.close()
}

func (p *Pipe) dropAnyStream() {
	if fc := p.fc.Load(); fc != nil {
		p.dropStream(fc)
	}
}

func (p *Pipe) String() string {
	if p.hn != "" {
		return "xmpp:" + string(p.hn[:8]) + "@" + p.target()
	}
	return "xmpp:" + p.target()
}

// New connects the session and starts bridging. Close stops it.
func New(ctx context.Context, cfg Config) (*Bridge, error) {
	if cfg.Mesh == nil {
		return nil, fmt.Errorf("xmpppipe: no mesh")
	}
	b := &Bridge{cfg: cfg, log: cfg.Logger, pins: map[string]map[telehash.Hashname]bool{}, byHN: map[telehash.Hashname]*Pipe{}, byJID: map[string]*Pipe{}, refused: map[string]bool{}, ready: make(chan struct{})}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	account, err := jid.Parse(cfg.Session.JID)
	if err != nil {
		return nil, fmt.Errorf("xmpppipe: account %q: %w", cfg.Session.JID, err)
	}
	sc := cfg.Session
	sc.Peers = nil
	for _, p := range cfg.Pins {
		pj, err := jid.Parse(p.JID)
		if err != nil {
			return nil, fmt.Errorf("xmpppipe: pinned JID %q: %w", p.JID, err)
		}
		if _, err := telehash.ParseHashname(string(p.Hashname)); err != nil {
			return nil, fmt.Errorf("xmpppipe: pin for %s: %w", p.JID, err)
		}
		bare := pj.Bare().String()
		if b.pins[bare] == nil {
			b.pins[bare] = map[telehash.Hashname]bool{}
			if !pj.Bare().Equal(account.Bare()) {
				sc.Peers = append(sc.Peers, bare)
			}
		}
		b.pins[bare][p.Hashname] = true
	}
	sc.Node = xmpp.NodeOf(string(cfg.Mesh.Hashname()), cfg.Mesh.LinkInfo().Keys)
	sc.OnDatagram = b.onDatagram
	sc.OnPeer = b.onPeer
	sc.OnState = cfg.OnState
	if !cfg.NoBytestreams {
		sc.OnBytestream = b.onBytestream
	}
	if sc.Logger == nil {
		sc.Logger = cfg.Logger
	}
	b.sess, err = xmpp.Dial(ctx, sc)
	close(b.ready)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// Session is the bridge's XMPP session.
func (b *Bridge) Session() *xmpp.Session { return b.sess }

// Close ends the session and removes the pipes from the mesh.
func (b *Bridge) Close() error {
	err := b.sess.Close()
	b.mu.Lock()
	byHN, byJID := b.byHN, b.byJID
	b.byHN, b.byJID = map[telehash.Hashname]*Pipe{}, map[string]*Pipe{}
	b.mu.Unlock()
	for _, p := range byJID {
		p.dropAnyStream()
	}
	for hn, p := range byHN {
		p.dropAnyStream()
		b.cfg.Mesh.RemovePipe(hn, p)
	}
	return err
}

// Online returns the pinned nodes online now: hashname to full JID.
func (b *Bridge) Online() map[telehash.Hashname]string {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := map[telehash.Hashname]string{}
	for hn, p := range b.byHN {
		if to := p.target(); to != "" && p.offered {
			m[hn] = to
		}
	}
	return m
}

// Pipe returns the pipe that carries packets to a node's full JID, or nil.
func (b *Bridge) Pipe(jid string) *Pipe {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.byJID[jid]
}

func bareOf(full string) string {
	j, err := jid.Parse(full)
	if err != nil {
		return ""
	}
	return j.Bare().String()
}

// routeLocked returns the pipe for packets from a full JID of a pinned
// account, making one for a node not announced yet (a handshake may
// arrive before its presence; the mesh authenticates it). nil: refused.
func (b *Bridge) routeLocked(from string) *Pipe {
	if b.pins[bareOf(from)] == nil || b.refused[from] {
		return nil
	}
	p := b.byJID[from]
	if p == nil {
		p = &Pipe{b: b, to: from}
		b.byJID[from] = p
	}
	return p
}

// onDatagram hands a packet from a pinned account to the mesh.
func (b *Bridge) onDatagram(from string, pkt []byte) {
	<-b.ready
	b.mu.Lock()
	p := b.routeLocked(from)
	follow := p != nil && p.hn != "" && slices.Contains(p.jids, from)
	b.mu.Unlock()
	if p == nil {
		return
	}
	if follow {
		b.follow(p, from)
	}
	b.cfg.Mesh.Receive(pkt, p)
}

// follow points p at from, one of the JIDs its node presents, where a
// packet came from: with two logins of one identity, the one talking to
// us gets the answers, not the last one to log in (a git-remote-xmpp
// linking while its daemon ran saw its handshake answered to the daemon,
// and its resends dropped as replays: xmpp.txtar's clone from Carol).
func (b *Bridge) follow(p *Pipe, from string) {
	p.mu.Lock()
	moved := p.to != from
	p.to = from
	p.mu.Unlock()
	if moved {
		b.log.Debug("xmpppipe: packets from another JID of the node: answers go there", "hashname", p.hn, "to", from)
		p.dropAnyStream()
		b.maybeOpenStream(p, from)
	}
}

// onBytestream takes a bytestream a pinned account's node opened.
func (b *Bridge) onBytestream(from string, c net.Conn) {
	<-b.ready
	b.mu.Lock()
	p := b.routeLocked(from)
	b.mu.Unlock()
	if p == nil {
		c.Close()
		return
	}
	p.attach(c, false)
}

// openStream opens a bytestream to p's node; without one (no proxy,
// refused) packets stay in messages.
func (b *Bridge) openStream(p *Pipe, to string) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := b.sess.OpenBytestream(ctx, to)
	if err != nil {
		b.log.Info("xmpppipe: no bytestream, packets stay in messages", "jid", to, "err", err)
		return
	}
	if p.target() != to {
		c.Close() // the node moved meanwhile
		return
	}
	p.attach(c, true)
	// The first frame tells the target the stream is activated.
	if fc := p.fc.Load(); fc != nil {
		_ = fc.send(nil)
	}
	b.log.Debug("xmpppipe: bytestream up", "jid", to)
}

// testHookBeforeOffer runs before a new pipe is offered to the mesh
// (tests: a process descheduled there under load).
var testHookBeforeOffer func()

// onPeer points the node's pipe at the full JID it announced itself on
// (when its hashname is pinned for that account), and away from it when
// it leaves.
func (b *Bridge) onPeer(peer xmpp.Peer) {
	<-b.ready
	hn := telehash.Hashname(peer.Node.Hashname)
	if !peer.Online {
		b.mu.Lock()
		delete(b.refused, peer.JID)
		p := b.byJID[peer.JID]
		delete(b.byJID, peer.JID)
		next := ""
		if p != nil {
			p.jids = slices.DeleteFunc(p.jids, func(j string) bool { return j == peer.JID })
			if len(p.jids) > 0 {
				next = p.jids[len(p.jids)-1]
			}
		}
		b.mu.Unlock()
		if p == nil {
			return
		}
		p.mu.Lock()
		left := p.to == peer.JID
		if left {
			p.to = next
		}
		p.mu.Unlock()
		if left {
			p.dropAnyStream()
			if next != "" {
				b.log.Debug("xmpppipe: node left one of its JIDs, packets go to another", "hashname", p.hn, "left", peer.JID, "to", next)
				b.maybeOpenStream(p, next)
			}
		}
		if p.hn != "" && b.cfg.OnPeer != nil {
			b.cfg.OnPeer(p.hn, peer.JID, false)
		}
		return
	}
	b.mu.Lock()
	pinned := b.pins[bareOf(peer.JID)][hn]
	b.mu.Unlock()
	if !pinned {
		b.mu.Lock()
		again := b.refused[peer.JID] // AddPins replays the nodes online
		b.refused[peer.JID] = true
		b.mu.Unlock()
		if again {
			return
		}
		b.log.Warn("xmpppipe: node presents a hashname not pinned for its account: refused",
			"jid", peer.JID, "hashname", hn)
		return
	}
	b.mu.Lock()
	delete(b.refused, peer.JID)
	p := b.byHN[hn]
	added := p == nil
	if added {
		p = &Pipe{b: b, hn: hn}
		b.byHN[hn] = p
	}
	early := b.byJID[peer.JID]
	b.byJID[peer.JID] = p
	p.jids = append(slices.DeleteFunc(p.jids, func(j string) bool { return j == peer.JID }), peer.JID)
	p.mu.Lock()
	moved := p.to != peer.JID
	p.to = peer.JID
	p.mu.Unlock()
	b.mu.Unlock()
	if moved {
		p.dropAnyStream()
	}
	if early != nil && early != p {
		// What came before the presence went over a pipe of its own: its
		// bytestream moves here, and it is offered too so that the
		// mesh's current path keeps working.
		p.takeStream(early)
		b.cfg.Mesh.AddPipe(hn, early)
	}
	if added {
		if testHookBeforeOffer != nil {
			testHookBeforeOffer()
		}
		b.cfg.Mesh.AddPipe(hn, p)
		b.mu.Lock()
		p.offered = true
		b.mu.Unlock()
	}
	if moved {
		b.maybeOpenStream(p, peer.JID)
	}
	if b.cfg.OnPeer != nil {
		b.cfg.OnPeer(hn, peer.JID, true)
	}
}

// maybeOpenStream opens a bytestream to p's node at to when it has none
// and this side opens it: the one with the smaller full JID.
func (b *Bridge) maybeOpenStream(p *Pipe, to string) {
	if p.fc.Load() == nil && !b.cfg.NoBytestreams && b.sess.LocalJID() < to {
		go b.openStream(p, to)
	}
}
