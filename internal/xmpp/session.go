// Package xmpp is the project's small interface over mellium.im/xmpp
// v0.22.0: one client session per account that announces our node in its
// presence, discovers peer nodes (the account's other resources and
// configured friends) from theirs, accepts subscriptions from configured
// accounts only, carries opaque datagrams in <message> stanzas, and
// reconnects with backoff. mellium's known bugs (see
// /work/shared/notes/xmpp.md) are worked around here: nodes are told
// apart by a presence payload, not by resource (the server assigns one);
// the handler never returns a non-stanza error and never calls Send (it
// queues events for another goroutine); reconnect and presence re-send
// are ours.
package xmpp

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmlstream"
	mxmpp "mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/ping"
	"mellium.im/xmpp/stanza"
	"mellium.im/xmpp/stream"

	"github.com/git-remote-daemon/git-remote-daemon/internal/backoff"
)

// Errors of Session.
var (
	ErrNotConnected = errors.New("xmpp: not connected")
	ErrClosed       = errors.New("xmpp: session closed")
)

// sendTimeout bounds a datagram's write when the caller set no deadline:
// a server that stopped reading must not block a mesh for long.
const sendTimeout = 5 * time.Second

// eventQueue bounds the events waiting for the callbacks; datagrams
// beyond it are dropped (telehash retransmits).
const eventQueue = 4096

// Session is a client session that reconnects until Close.
type Session struct {
	cfg     Config
	log     *slog.Logger
	account jid.JID // bare

	mu sync.Mutex
	// peers are the bare JIDs of the accounts we talk to (Config.Peers,
	// and AddPeers'); others are the nodes seen in presence of accounts
	// that are not peers (yet), for AddPeers (peers.go).
	peers    map[string]bool
	others   map[string]Peer
	cur      *mxmpp.Session
	guard    *guardConn // cur's raw connection (see guardConn)
	local    jid.JID
	nodes    map[string]Peer // by full JID
	password string
	closed   bool
	// streamHost is the connection's bytestreams proxy, once found.
	streamHost *streamHost

	events chan func()
	out    *outbox
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	sent, received, dropped, messages atomic.Uint64
}

// Dial logs in once (an error here is final: wrong password, no server)
// and keeps the session up afterwards, reconnecting with backoff.
func Dial(ctx context.Context, cfg Config) (*Session, error) {
	cfg.setDefaults()
	account, peers, err := cfg.check()
	if err != nil {
		return nil, err
	}
	s := &Session{
		cfg: cfg, log: cfg.Logger, account: account, peers: peers,
		nodes: map[string]Peer{}, others: map[string]Peer{},
		events: make(chan func(), eventQueue),
		out:    newOutbox(),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	done, err := s.connect(ctx)
	if err != nil {
		s.cancel()
		return nil, err
	}
	s.wg.Add(3)
	go s.dispatch()
	go s.write()
	go s.run(done)
	return s, nil
}

// LocalJID is the session's current full JID ("" while disconnected).
func (s *Session) LocalJID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil {
		return ""
	}
	return s.local.String()
}

// Account is the bare JID.
func (s *Session) Account() string { return s.account.String() }

// Peers returns the peer nodes online now.
func (s *Session) Peers() []Peer {
	s.mu.Lock()
	defer s.mu.Unlock()
	ps := make([]Peer, 0, len(s.nodes))
	for _, p := range s.nodes {
		ps = append(ps, p)
	}
	return ps
}

// Stats are datagram counters; Messages counts the messages that
// carried the datagrams sent (several per message in batches).
type Stats struct{ Sent, Received, Dropped, Messages uint64 }

// Stats returns the counters.
func (s *Session) Stats() Stats {
	return Stats{s.sent.Load(), s.received.Load(), s.dropped.Load(), s.messages.Load()}
}

// Send queues one datagram to a full JID for the session's writer
// (unacknowledged: it may be lost if the peer or the connection goes
// away). It waits while much is queued already, until ctx's deadline or
// at most 5 s.
func (s *Session) Send(ctx context.Context, to string, b []byte) error {
	if len(b) > MaxDatagram {
		return ErrDatagramSize
	}
	tj, err := jid.Parse(to)
	if err != nil {
		return fmt.Errorf("xmpp: send to %q: %w", to, err)
	}
	s.mu.Lock()
	up := s.cur != nil
	batch := s.nodes[tj.String()].Batch
	s.mu.Unlock()
	if !up {
		return ErrNotConnected
	}
	if err := s.out.put(ctx, s.ctx, deadline(ctx, sendTimeout), tj, batch, b); err != nil {
		return fmt.Errorf("xmpp: send to %s: %w", to, err)
	}
	return nil
}

// Close ends the session (unavailable presence, end of stream).
func (s *Session) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	cur, g := s.cur, s.guard
	s.mu.Unlock()
	s.cancel()
	if cur != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = g.bounded(deadline(ctx, time.Second), func() error {
			return cur.Send(ctx, stanza.Presence{Type: stanza.UnavailablePresence}.Wrap(nil))
		})
		cancel()
		_ = cur.Close()
		_ = cur.Conn().Close()
	}
	s.wg.Wait()
	return nil
}

// dispatch runs the queued callbacks in order.
func (s *Session) dispatch() {
	defer s.wg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case f := <-s.events:
			f()
		}
	}
}

// queue adds an event; drop reports whether a full queue may drop it.
func (s *Session) queue(f func(), drop bool) {
	if drop {
		select {
		case s.events <- f:
		default:
			s.dropped.Add(1)
		}
		return
	}
	select {
	case s.events <- f:
	case <-s.ctx.Done():
	}
}

func (s *Session) getPassword(ctx context.Context) (string, error) {
	if s.cfg.Password != "" {
		return s.cfg.Password, nil
	}
	s.mu.Lock()
	pw := s.password
	s.mu.Unlock()
	if pw != "" {
		return pw, nil
	}
	return s.cfg.PasswordFunc(ctx, s.account.Localpart(), s.account.Domainpart())
}

// connect logs in, starts serving, and announces us: it returns a channel
// closed when the connection ends.
func (s *Session) connect(ctx context.Context) (<-chan struct{}, error) {
	pw, err := s.getPassword(ctx)
	if err != nil {
		return nil, err
	}
	xs, g, err := s.cfg.login(ctx, s.account, pw)
	if err != nil {
		if errors.Is(err, errAuth) {
			s.mu.Lock()
			s.password = ""
			s.mu.Unlock()
		}
		return nil, err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		xs.Close()
		return nil, ErrClosed
	}
	s.password = pw
	s.cur, s.guard, s.local = xs, g, xs.LocalAddr()
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := xs.Serve(mxmpp.HandlerFunc(s.handle))
		if err != nil && s.ctx.Err() == nil {
			s.log.Info("xmpp: connection ended", "account", s.account, "err", err)
		}
	}()
	if err := g.bounded(deadline(ctx, 30*time.Second), func() error { return s.announce(ctx, xs) }); err != nil {
		_ = xs.Conn().Close()
		<-done
		s.mu.Lock()
		s.cur = nil
		s.mu.Unlock()
		return nil, err
	}
	s.queue(func() {
		if s.cfg.OnState != nil {
			s.cfg.OnState(true)
		}
	}, false)
	s.log.Debug("xmpp: connected", "jid", xs.LocalAddr())
	return done, nil
}

// announce asks configured peers for a subscription where the roster
// has none, then sends our presence (priority -1: bare-JID messages for
// humans never reach a node) with our node payload.
func (s *Session) announce(ctx context.Context, xs *mxmpp.Session) error {
	have, err := subscribedTo(ctx, xs)
	if err != nil {
		return err
	}
	for _, p := range s.peerList() {
		if have[p] || p == s.account.String() {
			continue
		}
		pj, _ := jid.Parse(p)
		if err := xs.Send(ctx, stanza.Presence{To: pj, Type: stanza.SubscribePresence}.Wrap(nil)); err != nil {
			return fmt.Errorf("xmpp: subscribe to %s: %w", p, err)
		}
	}
	return xs.Send(ctx, stanza.Presence{}.Wrap(s.presencePayload()))
}

// run keeps the session up until Close: it waits for the connection to
// end, reports the nodes gone, and reconnects with backoff.
func (s *Session) run(done <-chan struct{}) {
	defer s.wg.Done()
	b := backoff.Backoff{Min: s.cfg.BackoffMin, Max: s.cfg.BackoffMax, StableAfter: 10 * time.Second}
	for {
		start := time.Now()
		s.keepalive(done)
		s.disconnected()
		if s.ctx.Err() != nil {
			return
		}
		b.Done(time.Since(start))
		for {
			if !backoff.Sleep(s.ctx, b.Next()) {
				return
			}
			ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
			d, err := s.connect(ctx)
			cancel()
			if err == nil {
				done = d
				break
			}
			if s.ctx.Err() != nil {
				return
			}
			s.log.Info("xmpp: reconnect failed", "account", s.account, "err", err)
		}
	}
}

// keepalive pings the server until the connection ends or a ping fails.
func (s *Session) keepalive(done <-chan struct{}) {
	t := time.NewTicker(s.cfg.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-s.ctx.Done():
			return
		case <-t.C:
			s.mu.Lock()
			cur, g := s.cur, s.guard
			s.mu.Unlock()
			if cur == nil {
				return
			}
			ctx, cancel := context.WithTimeout(s.ctx, s.cfg.PingTimeout)
			err := g.bounded(deadline(ctx, s.cfg.PingTimeout), func() error { return ping.Send(ctx, cur, s.account.Domain()) })
			cancel()
			if err != nil && !isStanzaError(err) {
				s.log.Info("xmpp: server ping failed, reconnecting", "account", s.account, "err", err)
				_ = cur.Conn().Close()
				<-done
				return
			}
		}
	}
}

// disconnected forgets the connection and every node seen through it.
func (s *Session) disconnected() {
	s.mu.Lock()
	cur := s.cur
	s.cur = nil
	s.streamHost = nil
	gone := make([]Peer, 0, len(s.nodes))
	for _, p := range s.nodes {
		p.Online = false
		gone = append(gone, p)
	}
	clear(s.nodes)
	clear(s.others)
	s.mu.Unlock()
	if cur != nil {
		_ = cur.Conn().Close()
	}
	s.dropped.Add(uint64(s.out.clear()))
	s.queue(func() {
		for _, p := range gone {
			if s.cfg.OnPeer != nil {
				s.cfg.OnPeer(p)
			}
		}
		if s.cfg.OnState != nil {
			s.cfg.OnState(false)
		}
	}, false)
}

func isStanzaError(err error) bool {
	var se stanza.Error
	return errors.As(err, &se)
}

// saslFailure matches mellium's internal saslerr.Error (the SASL
// <failure/> the server sent); stanza and stream errors are excluded.
type saslFailure interface {
	error
	TokenReader() xml.TokenReader
}

func isAuthError(err error) bool {
	var sf saslFailure
	if errors.As(err, &sf) {
		switch sf.(type) {
		case stanza.Error, stream.Error:
		default:
			return true
		}
	}
	m := err.Error()
	return strings.Contains(m, "not-authorized") || strings.Contains(m, "account-disabled") ||
		strings.Contains(m, "credentials-expired")
}

// presencePayload is our priority and node element.
func (s *Session) presencePayload() xml.TokenReader {
	return presencePayload(s.cfg.Node, !s.cfg.noBatch)
}

func presencePayload(n Node, batch bool) xml.TokenReader {
	prio := xml.StartElement{Name: xml.Name{Local: "priority"}}
	return xmlstream.MultiReader(
		xmlstream.Wrap(xmlstream.Token(xml.CharData("-1")), prio),
		n.tokenReader(batch),
	)
}
