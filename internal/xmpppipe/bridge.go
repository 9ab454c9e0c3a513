// Package xmpppipe makes an XMPP session a path between telehash meshes
// (telehash v3 allows any transport as a path): each peer node, a full
// JID seen in presence with a pinned hashname, becomes a telehash.Pipe
// offered to the mesh, and datagrams from configured accounts are handed
// to Mesh.Receive. The XMPP server relays E3X packets only: it sees
// neither keys' secrets, nor channel contents.
package xmpppipe

import (
	"context"
	"fmt"
	"log/slog"
	"net"
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
	pins map[string]map[telehash.Hashname]bool // bare JID -> hashnames

	mu    sync.Mutex
	pipes map[string]*Pipe // by full JID
	// refused are full JIDs that presented a hashname not pinned for
	// their account: their datagrams are dropped.
	refused map[string]bool
}

// Pipe is one peer node's full JID as a telehash path.
type Pipe struct {
	b   *Bridge
	jid string
	// Hashname is the pinned node announced at jid ("" until presence
	// validated it: datagrams from it still reach the mesh, which
	// authenticates them).
	hn telehash.Hashname
	// fc is the SOCKS5 bytestream to the node, when one is up: packets
	// go over it, and over messages otherwise.
	fc atomic.Pointer[framed]
}

var _ telehash.Pipe = (*Pipe)(nil)

// Send sends one packet as a datagram message. It blocks while the
// server is slow to read (TCP flow control), never longer than the
// connection lives.
func (p *Pipe) Send(b []byte) error {
	if fc := p.fc.Load(); fc != nil && fc.ready.Load() {
		err := fc.send(b)
		if err == nil {
			return nil
		}
		p.b.log.Info("xmpppipe: bytestream failed, back to messages", "jid", p.jid, "err", err)
		p.dropStream(fc)
	}
	return p.b.sess.Send(context.Background(), p.jid, b)
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
	go func() {
		err := fc.readLoop(func(pkt []byte) { p.b.cfg.Mesh.Receive(pkt, p) })
		p.b.log.Debug("xmpppipe: bytestream ended", "jid", p.jid, "err", err)
		p.dropStream(fc)
	}()
}

func (p *Pipe) dropStream(fc *framed) {
	p.fc.CompareAndSwap(fc, nil)
	fc.close()
}

func (p *Pipe) String() string { return "xmpp:" + p.jid }

// New connects the session and starts bridging. Close stops it.
func New(ctx context.Context, cfg Config) (*Bridge, error) {
	if cfg.Mesh == nil {
		return nil, fmt.Errorf("xmpppipe: no mesh")
	}
	b := &Bridge{cfg: cfg, log: cfg.Logger, pins: map[string]map[telehash.Hashname]bool{}, pipes: map[string]*Pipe{}, refused: map[string]bool{}}
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
	sc.Node = xmpp.Node{Hashname: string(cfg.Mesh.Hashname())}
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
	pipes := b.pipes
	b.pipes = map[string]*Pipe{}
	b.mu.Unlock()
	for _, p := range pipes {
		if fc := p.fc.Load(); fc != nil {
			p.dropStream(fc)
		}
		if p.hn != "" {
			b.cfg.Mesh.RemovePipe(p.hn, p)
		}
	}
	return err
}

// Online returns the pinned nodes online now, by hashname.
func (b *Bridge) Online() map[telehash.Hashname]string {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := map[telehash.Hashname]string{}
	for j, p := range b.pipes {
		if p.hn != "" {
			m[p.hn] = j
		}
	}
	return m
}

func bareOf(full string) string {
	j, err := jid.Parse(full)
	if err != nil {
		return ""
	}
	return j.Bare().String()
}

// onDatagram hands a packet from a pinned account to the mesh, over the
// pipe of the sender's full JID (made on first use: a handshake may
// arrive before the sender's presence).
func (b *Bridge) onDatagram(from string, pkt []byte) {
	if b.pins[bareOf(from)] == nil {
		return
	}
	b.mu.Lock()
	if b.refused[from] {
		b.mu.Unlock()
		return
	}
	p := b.pipes[from]
	if p == nil {
		p = &Pipe{b: b, jid: from}
		b.pipes[from] = p
	}
	b.mu.Unlock()
	b.cfg.Mesh.Receive(pkt, p)
}

// openStream opens a bytestream to p's node; without one (no proxy,
// refused) packets stay in messages.
func (b *Bridge) openStream(p *Pipe) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := b.sess.OpenBytestream(ctx, p.jid)
	if err != nil {
		b.log.Info("xmpppipe: no bytestream, packets stay in messages", "jid", p.jid, "err", err)
		return
	}
	p.attach(c, true)
	// The first frame tells the target the stream is activated.
	if fc := p.fc.Load(); fc != nil {
		_ = fc.send(nil)
	}
	b.log.Debug("xmpppipe: bytestream up", "jid", p.jid)
}

// onBytestream takes a bytestream a pinned account's node opened.
func (b *Bridge) onBytestream(from string, c net.Conn) {
	if b.pins[bareOf(from)] == nil {
		c.Close()
		return
	}
	b.mu.Lock()
	if b.refused[from] {
		b.mu.Unlock()
		c.Close()
		return
	}
	p := b.pipes[from]
	if p == nil {
		p = &Pipe{b: b, jid: from}
		b.pipes[from] = p
	}
	b.mu.Unlock()
	p.attach(c, false)
}

// Pipe returns the pipe of a node's full JID, or nil.
func (b *Bridge) Pipe(jid string) *Pipe {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.pipes[jid]
}

// onPeer offers the pipe of a node whose hashname is pinned for its
// account, and withdraws it when the node goes away.
func (b *Bridge) onPeer(peer xmpp.Peer) {
	hn := telehash.Hashname(peer.Node.Hashname)
	if peer.Online && !b.pins[bareOf(peer.JID)][hn] {
		b.mu.Lock()
		b.refused[peer.JID] = true
		b.mu.Unlock()
		b.log.Warn("xmpppipe: node presents a hashname not pinned for its account: refused",
			"jid", peer.JID, "hashname", hn)
		return
	}
	b.mu.Lock()
	delete(b.refused, peer.JID)
	p := b.pipes[peer.JID]
	if !peer.Online {
		if p == nil {
			b.mu.Unlock()
			return
		}
		delete(b.pipes, peer.JID)
		b.mu.Unlock()
		if fc := p.fc.Load(); fc != nil {
			p.dropStream(fc)
		}
		if p.hn != "" {
			b.cfg.Mesh.RemovePipe(p.hn, p)
		}
		if b.cfg.OnPeer != nil && p.hn != "" {
			b.cfg.OnPeer(p.hn, peer.JID, false)
		}
		return
	}
	fresh := false
	switch {
	case p != nil && p.hn == "":
		// Made for datagrams that came before the presence.
		p.hn, fresh = hn, true
	case p == nil || p.hn != hn:
		if p != nil {
			b.cfg.Mesh.RemovePipe(p.hn, p)
			if fc := p.fc.Load(); fc != nil {
				p.dropStream(fc)
			}
		}
		// A new Pipe value: the mesh keys paths by pipe, and one pipe
		// never serves two hashnames.
		p = &Pipe{b: b, jid: peer.JID, hn: hn}
		b.pipes[peer.JID] = p
		fresh = true
	}
	b.mu.Unlock()
	b.cfg.Mesh.AddPipe(hn, p)
	// One side opens the bytestream: the one with the smaller full JID.
	if fresh && !b.cfg.NoBytestreams && b.sess.LocalJID() < peer.JID && p.fc.Load() == nil {
		go b.openStream(p)
	}
	if b.cfg.OnPeer != nil {
		b.cfg.OnPeer(hn, peer.JID, true)
	}
}
