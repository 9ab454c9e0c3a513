package xmpp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"mellium.im/sasl"
	mxmpp "mellium.im/xmpp"
	"mellium.im/xmpp/jid"
)

// TLSMode is how the client connection is secured.
type TLSMode int

const (
	// StartTLS upgrades the connection with STARTTLS (required).
	StartTLS TLSMode = iota
	// DirectTLS speaks TLS from the first byte (XEP-0368, port 5223).
	DirectTLS
	// Plaintext uses no TLS at all: only with Config.AllowPlaintext
	// (loopback tests that record the traffic).
	Plaintext
)

func (m TLSMode) String() string {
	switch m {
	case StartTLS:
		return "starttls"
	case DirectTLS:
		return "direct-tls"
	case Plaintext:
		return "plaintext"
	}
	return "TLSMode(" + strconv.Itoa(int(m)) + ")"
}

// ParseTLSMode reads "starttls", "direct-tls" (or "tls") and "plaintext".
func ParseTLSMode(s string) (TLSMode, error) {
	switch s {
	case "", "starttls":
		return StartTLS, nil
	case "direct-tls", "tls", "directtls":
		return DirectTLS, nil
	case "plaintext", "none":
		return Plaintext, nil
	}
	return 0, fmt.Errorf("xmpp: unknown TLS mode %q (starttls, direct-tls, plaintext)", s)
}

// Config configures a Session.
type Config struct {
	// JID is the account, "user@domain"; a resource is ignored (the
	// server assigns one; nodes tell each other apart by Node).
	JID string
	// Password, or when empty PasswordFunc (e.g. GitCredential.Fill), is
	// the account's password.
	Password     string
	PasswordFunc func(ctx context.Context, user, domain string) (string, error)
	// Server is "host:port"; empty looks up the domain's SRV records
	// (_xmpps-client._tcp for direct TLS and _xmpp-client._tcp, ordered
	// together by priority and weight, XEP-0368) and, when it has none,
	// uses domain:5222 (see targets).
	Server string
	TLS    TLSMode
	// CAFile is a PEM file of extra CAs to trust (a self-hosted server).
	CAFile string
	// AllowPlaintext permits TLS == Plaintext.
	AllowPlaintext bool
	// Node is announced in our presence.
	Node Node
	// Peers are the bare JIDs of other accounts whose nodes we talk to:
	// their subscription requests are accepted (others are refused),
	// their presence and datagrams are received. The account's own other
	// resources are always peers.
	Peers []string
	// OnDatagram receives every datagram from a peer node; OnPeer every
	// change of a peer node's presence; OnState every connect (true) and
	// disconnect (false). They run one at a time on one goroutine, in
	// the order the events arrived, and must not block for long.
	OnDatagram func(from string, b []byte)
	OnPeer     func(Peer)
	OnState    func(up bool)
	// OnBytestream receives the SOCKS5 bytestreams (XEP-0065) peer nodes
	// open to us; nil refuses them. Proxy is the bytestreams proxy's JID
	// (empty: discovered from the server's disco#items).
	OnBytestream func(from string, c net.Conn)
	Proxy        string
	// PingInterval is how often the server is pinged to notice a dead
	// connection (default 30 s); a ping without answer in PingTimeout
	// (default 10 s) reconnects.
	PingInterval, PingTimeout time.Duration
	// Backoff bounds the reconnect delay (defaults 250 ms to 30 s).
	BackoffMin, BackoffMax time.Duration
	Logger                 *slog.Logger

	// noBatch (tests) makes a node of before batches: one datagram per
	// message, and no batch="1" in its presence.
	noBatch bool
	hooks   netHooks // the resolver and dialer (tests)
}

// Peer is a node seen in presence.
type Peer struct {
	JID    string // full JID
	Node   Node
	Online bool
	// Batch: the node takes several datagrams per message (NSBatch).
	Batch bool
}

func (c *Config) setDefaults() {
	if c.PingInterval <= 0 {
		c.PingInterval = 30 * time.Second
	}
	if c.PingTimeout <= 0 {
		c.PingTimeout = 10 * time.Second
	}
	if c.BackoffMin <= 0 {
		c.BackoffMin = 250 * time.Millisecond
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// check validates c and returns the account's bare JID and the peers.
func (c *Config) check() (jid.JID, map[string]bool, error) {
	j, err := jid.Parse(c.JID)
	if err != nil {
		return jid.JID{}, nil, fmt.Errorf("xmpp: account %q: %w", c.JID, err)
	}
	if j.Localpart() == "" {
		return jid.JID{}, nil, fmt.Errorf("xmpp: account %q has no user part", c.JID)
	}
	if c.TLS == Plaintext && !c.AllowPlaintext {
		return jid.JID{}, nil, errors.New("xmpp: plaintext connection not allowed")
	}
	if c.Password == "" && c.PasswordFunc == nil {
		return jid.JID{}, nil, errors.New("xmpp: no password and no password source")
	}
	if err := c.Node.Validate(); err != nil {
		return jid.JID{}, nil, err
	}
	peers := map[string]bool{}
	for _, p := range c.Peers {
		pj, err := jid.Parse(p)
		if err != nil {
			return jid.JID{}, nil, fmt.Errorf("xmpp: peer %q: %w", p, err)
		}
		peers[pj.Bare().String()] = true
	}
	return j.Bare(), peers, nil
}

// tlsConfig trusts the system roots plus CAFile.
func (c *Config) tlsConfig(domain string) (*tls.Config, error) {
	cfg := &tls.Config{ServerName: domain, MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		b, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("xmpp: CA file: %w", err)
		}
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("xmpp: no PEM certificate in CA file %s", c.CAFile)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// login dials and negotiates one client session.
func (c *Config) login(ctx context.Context, account jid.JID, password string) (*mxmpp.Session, *guardConn, error) {
	domain := account.Domainpart()
	tlsCfg, err := c.tlsConfig(domain)
	if err != nil {
		return nil, nil, err
	}
	ts, err := c.targets(ctx, domain)
	if err != nil {
		return nil, nil, err
	}
	var errs []error
	for _, t := range ts {
		tctx, cancel := context.WithTimeout(ctx, c.hooks.perTarget())
		s, g, err := c.loginTo(tctx, account, password, t, tlsCfg)
		cancel()
		if err == nil {
			c.Logger.Debug("xmpp: logged in", "server", t.addr, "tls", t.mode, "jid", s.LocalAddr())
			return s, g, nil
		}
		if ctx.Err() != nil {
			return nil, nil, errors.Join(append(errs, err)...)
		}
		errs = append(errs, err)
		if errors.Is(err, errAuth) {
			break
		}
	}
	return nil, nil, errors.Join(errs...)
}

var errAuth = errors.New("xmpp: authentication failed")

func (c *Config) loginTo(ctx context.Context, account jid.JID, password string, t target, tlsCfg *tls.Config) (*mxmpp.Session, *guardConn, error) {
	raw, err := c.hooks.dialContext(ctx, t.addr)
	if err != nil {
		return nil, nil, fmt.Errorf("xmpp: dial %s: %w", t.addr, err)
	}
	// mellium bounds the login by ctx with a deadline set long ago and
	// cleared at once: a Read blocked meanwhile misses it, and a server
	// that accepted and never answers held the login for good (seen with
	// a silent SRV target). The context's end is put on the raw
	// connection here instead, and mellium's deadlines ignored.
	g := newGuardConn(raw)
	g.up.Store(true)
	stop := context.AfterFunc(ctx, func() { _ = raw.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	var conn net.Conn = g
	features := []mxmpp.StreamFeature{}
	var state mxmpp.SessionState
	switch t.mode {
	case StartTLS:
		features = append(features, mxmpp.StartTLS(tlsCfg))
	case DirectTLS:
		// XEP-0368: SNI is the domain (tlsCfg's ServerName), ALPN
		// "xmpp-client".
		dc := tlsCfg.Clone()
		dc.NextProtos = []string{"xmpp-client"}
		tc := tls.Client(conn, dc)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, nil, fmt.Errorf("xmpp: TLS with %s: %w", t.addr, err)
		}
		conn = tc
	case Plaintext:
		// mellium offers SASL only on a secure stream: the caller allowed
		// plaintext explicitly.
		state = mxmpp.Secure
	}
	features = append(features,
		mxmpp.SASL("", password, sasl.ScramSha256, sasl.ScramSha1, sasl.Plain),
		mxmpp.BindResource())
	s, err := mxmpp.NewSession(ctx, account.Domain(), account, conn, state,
		mxmpp.NewNegotiator(func(*mxmpp.Session, *mxmpp.StreamConfig) mxmpp.StreamConfig {
			return mxmpp.StreamConfig{Features: features}
		}))
	if err != nil {
		conn.Close()
		if isAuthError(err) {
			return nil, nil, fmt.Errorf("%w as %s: %w", errAuth, account, err)
		}
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return nil, nil, fmt.Errorf("xmpp: login to %s (%s) as %s: %w", t.addr, t.mode, account, err)
	}
	if !stop() {
		conn.Close()
		return nil, nil, fmt.Errorf("xmpp: login to %s (%s) as %s: %w", t.addr, t.mode, account, ctx.Err())
	}
	return s, g, nil
}
