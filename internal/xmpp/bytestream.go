package xmpp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"mellium.im/xmlstream"
	mxmpp "mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
)

// NSBytestreams is XEP-0065 SOCKS5 Bytestreams.
const NSBytestreams = "http://jabber.org/protocol/bytestreams"

const nsDiscoItems = "http://jabber.org/protocol/disco#items"

// ErrNoProxy reports that the server offers no SOCKS5 bytestreams proxy.
var ErrNoProxy = errors.New("xmpp: no bytestreams proxy")

// bsQuery is the <query/> of XEP-0065.
type bsQuery struct {
	XMLName  xml.Name     `xml:"http://jabber.org/protocol/bytestreams query"`
	SID      string       `xml:"sid,attr,omitempty"`
	Mode     string       `xml:"mode,attr,omitempty"`
	Hosts    []streamHost `xml:"streamhost"`
	Used     *usedHost    `xml:"streamhost-used"`
	Activate string       `xml:"activate,omitempty"`
}

type streamHost struct {
	JID  string `xml:"jid,attr"`
	Host string `xml:"host,attr"`
	Port int    `xml:"port,attr"`
}

type usedHost struct {
	JID string `xml:"jid,attr"`
}

type discoItems struct {
	XMLName xml.Name `xml:"http://jabber.org/protocol/disco#items query"`
	Items   []struct {
		JID string `xml:"jid,attr"`
	} `xml:"item"`
}

// tokens marshals v as a token stream for mellium.
func tokens(v any) (xml.TokenReader, error) {
	b, err := xml.Marshal(v)
	if err != nil {
		return nil, err
	}
	return xml.NewDecoder(bytesReader(b)), nil
}

// current returns the live mellium session and our full JID.
func (s *Session) current() (*mxmpp.Session, jid.JID, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil {
		return nil, jid.JID{}, ErrNotConnected
	}
	return s.cur, s.local, nil
}

// query sends an IQ with payload v to to and decodes the answer's
// payload into out (nil: none expected).
func query(ctx context.Context, xs *mxmpp.Session, typ stanza.IQType, to jid.JID, v, out any) error {
	payload, err := tokens(v)
	if err != nil {
		return err
	}
	return xs.UnmarshalIQElement(ctx, payload, stanza.IQ{To: to, Type: typ}, out)
}

// proxy returns the bytestreams proxy: Config.Proxy, or the first item
// of the server's disco#items that answers a bytestreams query.
func (s *Session) proxy(ctx context.Context) (streamHost, error) {
	s.mu.Lock()
	cached := s.streamHost
	s.mu.Unlock()
	if cached != nil {
		return *cached, nil
	}
	xs, _, err := s.current()
	if err != nil {
		return streamHost{}, err
	}
	var candidates []string
	if s.cfg.Proxy != "" {
		candidates = []string{s.cfg.Proxy}
	} else {
		var items discoItems
		if err := query(ctx, xs, stanza.GetIQ, s.account.Domain(), &discoItems{}, &items); err != nil {
			return streamHost{}, fmt.Errorf("xmpp: disco#items: %w", err)
		}
		for _, it := range items.Items {
			candidates = append(candidates, it.JID)
		}
	}
	for _, c := range candidates {
		cj, err := jid.Parse(c)
		if err != nil {
			continue
		}
		var q bsQuery
		if err := query(ctx, xs, stanza.GetIQ, cj, &bsQuery{}, &q); err != nil || len(q.Hosts) == 0 {
			continue
		}
		h := q.Hosts[0]
		if h.JID == "" {
			h.JID = c
		}
		s.mu.Lock()
		if s.cur == xs {
			s.streamHost = &h
		}
		s.mu.Unlock()
		return h, nil
	}
	return streamHost{}, ErrNoProxy
}

func dialHost(ctx context.Context, h streamHost, dst string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(h.Host, strconv.Itoa(h.Port)))
	if err != nil {
		return nil, fmt.Errorf("xmpp: bytestreams proxy %s: %w", h.JID, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if err := socks5Connect(c, dst); err != nil {
		c.Close()
		return nil, err
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

// OpenBytestream opens a SOCKS5 bytestream (XEP-0065, mediated by the
// server's proxy) to a peer node's full JID: a plain TCP stream to it
// through the proxy. The server relays the bytes as they are. Prosody
// 0.12.3's proxy65 may hold back the last chunk it read while the
// receiver was slow until more bytes come: a protocol on top must send
// padding after a burst (xmpppipe does).
func (s *Session) OpenBytestream(ctx context.Context, to string) (net.Conn, error) {
	tj, err := jid.Parse(to)
	if err != nil {
		return nil, fmt.Errorf("xmpp: bytestream to %q: %w", to, err)
	}
	h, err := s.proxy(ctx)
	if err != nil {
		return nil, err
	}
	xs, local, err := s.current()
	if err != nil {
		return nil, err
	}
	var rb [12]byte
	_, _ = rand.Read(rb[:])
	sid := hex.EncodeToString(rb[:])
	var used bsQuery
	if err := query(ctx, xs, stanza.SetIQ, tj, &bsQuery{SID: sid, Mode: "tcp", Hosts: []streamHost{h}}, &used); err != nil {
		return nil, fmt.Errorf("xmpp: bytestream offer to %s: %w", to, err)
	}
	if used.Used == nil || used.Used.JID != h.JID {
		return nil, fmt.Errorf("xmpp: bytestream: %s used no offered streamhost", to)
	}
	c, err := dialHost(ctx, h, streamHash(sid, local.String(), tj.String()))
	if err != nil {
		return nil, err
	}
	pj, err := jid.Parse(h.JID)
	if err == nil {
		err = query(ctx, xs, stanza.SetIQ, pj, &bsQuery{SID: sid, Activate: tj.String()}, nil)
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("xmpp: bytestream activate: %w", err)
	}
	return c, nil
}

// handleBytestream answers an offer from a peer node: it connects to the
// first streamhost that works and replies with it; the connection goes
// to Config.OnBytestream. It writes its reply through t (never Send).
func (s *Session) handleBytestream(t xmlstream.TokenReadEncoder, from jid.JID, in *inStanza) {
	reply := stanza.IQ{ID: in.ID, To: from, Type: stanza.ResultIQ}
	refuse := func(cond stanza.Condition) {
		// Error swaps to and from: the request's from is the reply's to.
		req := stanza.IQ{ID: in.ID, From: from}
		_, _ = xmlstream.Copy(t, req.Error(stanza.Error{Type: stanza.Cancel, Condition: cond}))
	}
	if s.cfg.OnBytestream == nil || !s.allowed(from.Bare()) || from.Resourcepart() == "" {
		refuse(stanza.NotAcceptable)
		return
	}
	q := in.Bytestream
	if q.SID == "" || len(q.SID) > 128 || q.Mode == "udp" {
		refuse(stanza.BadRequest)
		return
	}
	s.mu.Lock()
	local := s.local
	s.mu.Unlock()
	dst := streamHash(q.SID, from.String(), local.String())
	for _, h := range q.Hosts {
		ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
		c, err := dialHost(ctx, h, dst)
		cancel()
		if err != nil {
			s.log.Debug("xmpp: bytestream streamhost failed", "host", h.JID, "err", err)
			continue
		}
		payload, err := tokens(&bsQuery{SID: q.SID, Used: &usedHost{JID: h.JID}})
		if err != nil {
			c.Close()
			break
		}
		if _, err := xmlstream.Copy(t, reply.Wrap(payload)); err != nil {
			c.Close()
			return
		}
		fs := from.String()
		s.queue(func() { s.cfg.OnBytestream(fs, c) }, false)
		return
	}
	refuse(stanza.ItemNotFound)
}
