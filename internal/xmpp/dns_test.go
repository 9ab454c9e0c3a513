package xmpp

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// dnsServer is a tiny authoritative DNS server on 127.0.0.1 (UDP) for
// tests: it answers SRV and A records from its zone, NXDOMAIN for names
// it does not know, and an empty answer for other types of names it
// knows. Queries are parsed and answers built by x/net's dnsmessage (the
// package the stdlib resolver vendors); the client reads them with the
// stdlib resolver.
type dnsServer struct {
	conn net.PacketConn

	mu   sync.Mutex
	srv  map[string][]dnsmessage.SRVResource // by lowercased FQDN
	a    map[string][4]byte
	asks []string // "TYPE name" of every query
}

func startDNS(t testing.TB) *dnsServer {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &dnsServer{conn: c, srv: map[string][]dnsmessage.SRVResource{}, a: map[string][4]byte{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.serve()
	}()
	t.Cleanup(func() {
		c.Close()
		<-done
	})
	return d
}

// SRV adds an SRV record for name (e.g. "_xmpp-client._tcp.localhost.").
func (d *dnsServer) SRV(name string, prio, weight, port uint16, target string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := strings.ToLower(name)
	d.srv[n] = append(d.srv[n], dnsmessage.SRVResource{Priority: prio, Weight: weight, Port: port,
		Target: dnsmessage.MustNewName(target)})
}

// A sets the IPv4 address of name (e.g. "xmpp.test.").
func (d *dnsServer) A(name string, ip [4]byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.a[strings.ToLower(name)] = ip
}

// Asked returns the queries received so far.
func (d *dnsServer) Asked() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.asks...)
}

// Resolver is a pure-Go resolver that asks only this server.
func (d *dnsServer) Resolver() *net.Resolver {
	addr := d.conn.LocalAddr().String()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var nd net.Dialer
		return nd.DialContext(ctx, "udp", addr) // a PacketConn: the resolver frames for UDP
	}}
}

func (d *dnsServer) serve() {
	buf := make([]byte, 1500)
	for {
		n, from, err := d.conn.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if out, err := d.answer(buf[:n]); err == nil {
			_, _ = d.conn.WriteTo(out, from)
		}
	}
}

func (d *dnsServer) answer(q []byte) ([]byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(q)
	if err != nil {
		return nil, err
	}
	question, err := p.Question()
	if err != nil {
		return nil, err
	}
	name := strings.ToLower(question.Name.String())
	d.mu.Lock()
	defer d.mu.Unlock()
	d.asks = append(d.asks, question.Type.String()+" "+name)
	srvs, hasSRV := d.srv[name]
	ip, hasA := d.a[name]
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired}
	if !hasSRV && !hasA {
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(question); err != nil {
		return nil, err
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	rrh := dnsmessage.ResourceHeader{Name: question.Name, Class: dnsmessage.ClassINET, TTL: 60}
	switch question.Type {
	case dnsmessage.TypeSRV:
		for _, s := range srvs {
			if err := b.SRVResource(rrh, s); err != nil {
				return nil, err
			}
		}
	case dnsmessage.TypeA:
		if hasA {
			if err := b.AResource(rrh, dnsmessage.AResource{A: ip}); err != nil {
				return nil, err
			}
		}
	}
	return b.Finish()
}
