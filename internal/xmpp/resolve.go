package xmpp

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
)

// netHooks is how a session finds and reaches its server. The zero value
// is the system's resolver and dialer; tests point them at a DNS server
// of their own (no user needs another resolver than the system's).
type netHooks struct {
	resolver *net.Resolver
	dial     func(ctx context.Context, network, addr string) (net.Conn, error)
	// targetTimeout bounds the dial and login at one server of the
	// domain's SRV records, so that one that accepts and never answers
	// does not keep us from the next (default 15 s).
	targetTimeout time.Duration
}

func (h *netHooks) resolverOrDefault() *net.Resolver {
	if h.resolver != nil {
		return h.resolver
	}
	return net.DefaultResolver
}

func (h *netHooks) dialContext(ctx context.Context, addr string) (net.Conn, error) {
	if h.dial != nil {
		return h.dial(ctx, "tcp", addr)
	}
	d := net.Dialer{Resolver: h.resolver}
	return d.DialContext(ctx, "tcp", addr)
}

func (h *netHooks) perTarget() time.Duration {
	if h.targetTimeout > 0 {
		return h.targetTimeout
	}
	return 15 * time.Second
}

type target struct {
	addr string
	mode TLSMode
}

// srvTarget is an SRV record and the connection its service asks for.
type srvTarget struct {
	net.SRV
	mode TLSMode
}

// errNoService is returned when the domain's SRV records say that it
// offers no client service we may use (a single record of target ".").
var errNoService = errors.New("xmpp: no client service")

// targets lists the servers to try, in order (RFC 6120 section 3.2,
// XEP-0368):
//   - a configured Server alone;
//   - else the domain's _xmpps-client._tcp (direct TLS; not with
//     TLS=plaintext) and _xmpp-client._tcp records (not with
//     TLS=direct-tls), mixed and ordered by priority and weight as one
//     set (XEP-0368's SHOULD), direct TLS first among records equal in
//     both. A service whose only record has the target "." is not
//     offered (RFC 2782); if that leaves nothing, the domain offers no
//     service we may use, and its address records are not tried
//     (XEP-0368; RFC 6120: no fallback once SRV answered);
//   - with no SRV record at all (or a failed lookup), the domain on port
//     5222 (5223 for direct TLS).
//
// Servers of SRV records that cannot be reached are not followed by the
// fallback either (RFC 6120 3.2.1): login reports them all.
func (c *Config) targets(ctx context.Context, domain string) ([]target, error) {
	if c.Server != "" {
		return []target{{c.Server, c.TLS}}, nil
	}
	type service struct {
		name string
		mode TLSMode
	}
	var services []service
	if c.TLS != Plaintext {
		services = append(services, service{"xmpps-client", DirectTLS})
	}
	if c.TLS != DirectTLS {
		services = append(services, service{"xmpp-client", c.TLS})
	}
	var recs []srvTarget
	var refused []string
	for _, s := range services {
		_, srvs, err := c.hooks.resolverOrDefault().LookupSRV(ctx, s.name, "tcp", domain)
		if err != nil {
			// A malformed record is left out with an error (net.Resolver
			// returns the well-formed ones): use those.
			c.Logger.Debug("xmpp: SRV lookup", "service", "_"+s.name+"._tcp."+domain, "err", err, "records", len(srvs))
		}
		if len(srvs) == 1 && (srvs[0].Target == "." || srvs[0].Target == "") {
			refused = append(refused, "_"+s.name+"._tcp."+domain)
			continue
		}
		for _, r := range srvs {
			if r.Target == "." || r.Target == "" {
				continue // "." among other records means nothing
			}
			recs = append(recs, srvTarget{*r, s.mode})
		}
	}
	if len(recs) == 0 {
		if len(refused) > 0 {
			return nil, fmt.Errorf("%w at %s: its SRV records (%s) say the service is not offered (target \".\")",
				errNoService, domain, strings.Join(refused, ", "))
		}
		port := "5222"
		if c.TLS == DirectTLS {
			port = "5223"
		}
		return []target{{net.JoinHostPort(domain, port), c.TLS}}, nil
	}
	orderSRV(recs, rand.IntN)
	ts := make([]target, len(recs))
	for i, r := range recs {
		ts[i] = target{net.JoinHostPort(r.Target, strconv.Itoa(int(r.Port))), r.mode}
	}
	return ts, nil
}

// orderSRV orders records as RFC 2782 says: by priority, lowest first;
// within a priority, drawn at random in proportion to their weights
// (intn(n) returns a number in [0, n)); records of weight 0 come after
// the others, in the order given (stable).
func orderSRV(recs []srvTarget, intn func(int) int) {
	slices.SortStableFunc(recs, func(a, b srvTarget) int { return int(a.Priority) - int(b.Priority) })
	for i := 0; i < len(recs); {
		j := i + 1
		for j < len(recs) && recs[j].Priority == recs[i].Priority {
			j++
		}
		drawByWeight(recs[i:j], intn)
		i = j
	}
}

func drawByWeight(recs []srvTarget, intn func(int) int) {
	sum := 0
	for _, r := range recs {
		sum += int(r.Weight)
	}
	for len(recs) > 1 && sum > 0 {
		n, k := intn(sum), 0
		for ; k < len(recs)-1; k++ {
			if n < int(recs[k].Weight) {
				break
			}
			n -= int(recs[k].Weight)
		}
		// Move recs[k] to the front, keeping the others' order.
		picked := recs[k]
		copy(recs[1:k+1], recs[:k])
		recs[0] = picked
		sum -= int(picked.Weight)
		recs = recs[1:]
	}
}
