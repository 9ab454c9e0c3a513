package xmpp

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// dialLog records the addresses a session dials, and sends the fallback
// addresses (the domain "localhost" on 5222 and 5223, which the test
// cannot bind) to the test's Prosody.
type dialLog struct {
	mu    sync.Mutex
	addrs []string
}

func (l *dialLog) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.addrs...)
}

// deadPorts returns a port that refuses connections and one that accepts
// them and never says a word (a hung server), both on 127.0.0.1.
func deadPorts(t *testing.T) (refused, silent uint16) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused = uint16(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	s, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := s.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		s.Close()
		wg.Wait()
		for _, c := range conns {
			c.Close()
		}
	})
	return refused, uint16(s.Addr().(*net.TCPAddr).Port)
}

func port(t *testing.T, addr string) uint16 {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return uint16(n)
}

// TestIntegrationSRV logs in to a real Prosody found through the SRV
// records of a DNS server the test runs (RFC 6120 3.2, XEP-0368), and
// checks which servers were dialed, in which order.
func TestIntegrationSRV(t *testing.T) {
	srv := startServer(t)
	refused, silent := deadPorts(t)
	tlsPort, directPort := port(t, srv.Addr()), port(t, srv.DirectTLSAddr())
	const (
		xmpp  = "_xmpp-client._tcp.localhost."
		xmpps = "_xmpps-client._tcp.localhost."
	)
	starttlsAt := "xmpp.test.:" + strconv.Itoa(int(tlsPort))
	directAt := "xmpps.test.:" + strconv.Itoa(int(directPort))
	cases := []struct {
		name    string
		mode    TLSMode
		zone    func(d *dnsServer)
		dialed  []string
		wantErr error
	}{
		{name: "starttls", zone: func(d *dnsServer) {
			d.SRV(xmpp, 0, 0, tlsPort, "xmpp.test.")
		}, dialed: []string{starttlsAt}},
		{name: "direct TLS", zone: func(d *dnsServer) {
			d.SRV(xmpps, 0, 0, directPort, "xmpps.test.")
		}, dialed: []string{directAt}},
		{name: "direct TLS mode ignores xmpp-client", mode: DirectTLS, zone: func(d *dnsServer) {
			d.SRV(xmpp, 0, 0, tlsPort, "xmpp.test.")
			d.SRV(xmpps, 10, 0, directPort, "xmpps.test.")
		}, dialed: []string{directAt}},
		{name: "both, xmpps-client first by priority", zone: func(d *dnsServer) {
			d.SRV(xmpps, 5, 0, directPort, "xmpps.test.")
			d.SRV(xmpp, 10, 0, tlsPort, "xmpp.test.")
		}, dialed: []string{directAt}},
		{name: "both, xmpp-client first by priority", zone: func(d *dnsServer) {
			d.SRV(xmpp, 5, 0, tlsPort, "xmpp.test.")
			d.SRV(xmpps, 10, 0, directPort, "xmpps.test.")
		}, dialed: []string{starttlsAt}},
		{name: "both equal: direct TLS first", zone: func(d *dnsServer) {
			d.SRV(xmpp, 0, 0, tlsPort, "xmpp.test.")
			d.SRV(xmpps, 0, 0, directPort, "xmpps.test.")
		}, dialed: []string{directAt}},
		{name: "dead servers first", zone: func(d *dnsServer) {
			d.SRV(xmpp, 0, 0, refused, "refused.test.")
			d.SRV(xmpp, 1, 0, silent, "silent.test.")
			d.SRV(xmpps, 2, 0, directPort, "xmpps.test.")
		}, dialed: []string{"refused.test.:" + strconv.Itoa(int(refused)), "silent.test.:" + strconv.Itoa(int(silent)), directAt}},
		{name: "dead servers first, one service", zone: func(d *dnsServer) {
			d.SRV(xmpp, 0, 0, refused, "refused.test.")
			d.SRV(xmpp, 1, 0, silent, "silent.test.")
			d.SRV(xmpp, 2, 0, tlsPort, "xmpp.test.")
		}, dialed: []string{"refused.test.:" + strconv.Itoa(int(refused)), "silent.test.:" + strconv.Itoa(int(silent)), starttlsAt}},
		{name: "no SRV record: domain on 5222", zone: func(*dnsServer) {}, dialed: []string{"localhost:5222"}},
		{name: "no SRV record, direct TLS: domain on 5223", mode: DirectTLS, zone: func(*dnsServer) {}, dialed: []string{"localhost:5223"}},
		{name: "direct TLS not offered", zone: func(d *dnsServer) {
			d.SRV(xmpps, 0, 0, 0, ".")
			d.SRV(xmpp, 10, 0, tlsPort, "xmpp.test.")
		}, dialed: []string{starttlsAt}},
		{name: "no service: no fallback", zone: func(d *dnsServer) {
			d.SRV(xmpp, 0, 0, 0, ".")
		}, wantErr: errNoService},
		{name: "no service either way: no fallback", zone: func(d *dnsServer) {
			d.SRV(xmpp, 0, 0, 0, ".")
			d.SRV(xmpps, 0, 0, 0, ".")
		}, wantErr: errNoService},
		{name: "a malformed record among good ones", zone: func(d *dnsServer) {
			d.SRV(xmpp, 0, 0, tlsPort, "bad name.test.")
			d.SRV(xmpp, 1, 0, tlsPort, "xmpp.test.")
		}, dialed: []string{starttlsAt}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dns := startDNS(t)
			for _, n := range []string{"xmpp.test.", "xmpps.test.", "refused.test.", "silent.test."} {
				dns.A(n, [4]byte{127, 0, 0, 1})
			}
			c.zone(dns)
			var log dialLog
			r := dns.Resolver()
			cfg := config(srv, "alice", 0)
			cfg.Server, cfg.TLS, cfg.Logger = "", c.mode, testLogger(t)
			cfg.hooks = netHooks{resolver: r, targetTimeout: time.Second,
				dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
					log.mu.Lock()
					log.addrs = append(log.addrs, addr)
					log.mu.Unlock()
					switch addr {
					case "localhost:5222":
						addr = srv.Addr()
					case "localhost:5223":
						addr = srv.DirectTLSAddr()
					}
					d := net.Dialer{Resolver: r}
					return d.DialContext(ctx, network, addr)
				}}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			type result struct {
				s   *Session
				err error
			}
			res := make(chan result, 1)
			go func() {
				s, err := Dial(ctx, cfg)
				res <- result{s, err}
			}()
			var r0 result
			select {
			case r0 = <-res:
			case <-time.After(30 * time.Second):
				t.Fatalf("login still running 20 s after its context ended (dialed %q)", log.get())
			}
			s, err := r0.s, r0.err
			if err == nil {
				if s.LocalJID() == "" {
					t.Error("logged in without a JID")
				}
				s.Close()
			}
			switch {
			case c.wantErr == nil && err != nil:
				t.Fatalf("login: %v (dialed %q; DNS asked %q)", err, log.get(), dns.Asked())
			case c.wantErr != nil && !errors.Is(err, c.wantErr):
				t.Fatalf("login: %v, want %v (dialed %q)", err, c.wantErr, log.get())
			}
			if got := log.get(); !slices.Equal(got, c.dialed) {
				t.Fatalf("dialed %q, want %q (DNS asked %q)", got, c.dialed, dns.Asked())
			}
			if err != nil {
				t.Logf("error, as wanted: %v", err)
			}
		})
	}
}

func TestOrderSRV(t *testing.T) {
	rec := func(name string, prio, weight uint16, mode TLSMode) srvTarget {
		return srvTarget{net.SRV{Target: name, Priority: prio, Weight: weight}, mode}
	}
	names := func(rs []srvTarget) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.Target)
		}
		return out
	}
	low := func(int) int { return 0 }
	high := func(n int) int { return n - 1 }
	cases := []struct {
		name string
		in   []srvTarget
		intn func(int) int
		want []string
	}{
		{"priority first", []srvTarget{rec("c", 20, 50, StartTLS), rec("a", 0, 0, DirectTLS), rec("b", 10, 0, StartTLS)}, low, []string{"a", "b", "c"}},
		{"weight draws, low", []srvTarget{rec("a", 0, 0, DirectTLS), rec("b", 0, 10, StartTLS), rec("c", 0, 30, StartTLS)}, low, []string{"b", "c", "a"}},
		{"weight draws, high", []srvTarget{rec("a", 0, 0, DirectTLS), rec("b", 0, 10, StartTLS), rec("c", 0, 30, StartTLS)}, high, []string{"c", "b", "a"}},
		{"zero weights keep their order", []srvTarget{rec("s", 0, 0, DirectTLS), rec("t", 0, 0, StartTLS), rec("u", 1, 0, StartTLS)}, high, []string{"s", "t", "u"}},
		{"within each priority", []srvTarget{rec("x", 1, 1, StartTLS), rec("y", 1, 9, DirectTLS), rec("z", 0, 5, StartTLS)}, high, []string{"z", "y", "x"}},
	}
	for _, c := range cases {
		orderSRV(c.in, c.intn)
		if got := names(c.in); !slices.Equal(got, c.want) {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
	// The draw follows the weights: 1:3 over many orderings.
	first := map[string]int{}
	for range 4000 {
		rs := []srvTarget{rec("light", 0, 1, StartTLS), rec("heavy", 0, 3, StartTLS)}
		orderSRV(rs, rand.IntN)
		first[rs[0].Target]++
	}
	if first["heavy"] < 2600 || first["heavy"] > 3400 {
		t.Errorf("heavy first %d of 4000 times, want about 3000", first["heavy"])
	}
}
