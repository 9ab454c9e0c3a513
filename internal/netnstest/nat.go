package netnstest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// NewNAT adds a NAT router on the public network.
func (n *Net) NewNAT(ctx context.Context, name string, o NATOptions) (*NAT, error) {
	if err := n.reserve(name); err != nil {
		return nil, err
	}
	n.mu.Lock()
	index := len(n.nats) + 1
	nat := &NAT{net: n, Name: name, NS: n.prefix + "-" + name, Random: o.Random, index: index}
	n.nats[name] = nat
	n.mu.Unlock()
	if index > 250 {
		return nil, errors.New("netnstest: too many NATs")
	}
	if err := n.addNS(ctx, nat.NS); err != nil {
		return nil, err
	}
	pub, err := n.plugPublic(ctx, nat.NS, "wan")
	if err != nil {
		return nil, err
	}
	nat.Public = pub
	random := ""
	if o.Random {
		random = " random"
	}
	// Masquerade what leaves by the public side; drop what comes in from
	// it unsolicited, before conntrack confirms an entry for it (as home
	// routers do; without this a peer's early probe would take the port
	// masquerade wants for the host's own packet to that peer, and hole
	// punching would fail).
	ruleset := fmt.Sprintf(`table ip nat {
	chain post {
		type nat hook postrouting priority 100;
		oifname "wan" masquerade%s
	}
}
table inet fw {
	chain inbound {
		type filter hook input priority 0;
		iifname "wan" ct state new drop
	}
	chain forwarding {
		type filter hook forward priority 0;
		iifname "wan" ct state new drop
	}
}
`, random)
	steps := [][]string{
		{"ip", "-n", nat.NS, "link", "add", "lan", "type", "bridge"},
		{"ip", "-n", nat.NS, "addr", "add", nat.gateway().String() + "/24", "dev", "lan"},
		{"ip", "-n", nat.NS, "link", "set", "lan", "up"},
		{"ip", "netns", "exec", nat.NS, "sysctl", "-qw", "net.ipv4.ip_forward=1"},
	}
	for _, s := range steps {
		if err := run(ctx, s[0], s[1:]...); err != nil {
			return nil, err
		}
	}
	c := inNS(ctx, nat.NS, "nft", "-f", "-")
	c.Stdin = strings.NewReader(ruleset)
	if out, err := c.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("netnstest: nft in %s: %w: %s", nat.NS, err, out)
	}
	return nat, nil
}

func (nat *NAT) gateway() netip.Addr { return netip.AddrFrom4([4]byte{10, byte(nat.index), 0, 1}) }

// Host adds a host behind the NAT.
func (nat *NAT) Host(ctx context.Context, name string) (*Host, error) {
	n := nat.net
	if err := n.reserve(name); err != nil {
		return nil, err
	}
	h := &Host{net: n, Name: name, NS: n.prefix + "-" + name}
	if err := n.addNS(ctx, h.NS); err != nil {
		return nil, err
	}
	n.mu.Lock()
	n.hosts[name] = h
	n.mu.Unlock()
	if err := h.attach(ctx, nat); err != nil {
		return nil, err
	}
	return h, nil
}

// Flush makes the NAT forget every mapping (conntrack -F), as a router
// that reboots or times its table out: the next packet out gets a new
// mapping (a new port under Random), and packets from outside to the old
// one are dropped until then.
func (nat *NAT) Flush(ctx context.Context) error {
	return run(ctx, "ip", "netns", "exec", nat.NS, "conntrack", "-F")
}

// Down unplugs the NAT from the public network: nothing passes.
func (nat *NAT) Down(ctx context.Context) error {
	return run(ctx, "ip", "-n", nat.NS, "link", "set", "wan", "down")
}

// Up plugs it back in, with its mappings as they were.
func (nat *NAT) Up(ctx context.Context) error {
	return run(ctx, "ip", "-n", nat.NS, "link", "set", "wan", "up")
}

// MoveTo unplugs the host and plugs it into another network: behind nat,
// or on the public network if nat is nil. It gets a new address (also
// when moved to the network it was on: re-addressed); processes in it
// keep running, and sockets bound to the unspecified address keep
// working from the new one.
func (h *Host) MoveTo(ctx context.Context, nat *NAT) error {
	return h.attach(ctx, nat)
}

// attach (re)creates the host's interface eth0 on the public network
// (nat nil) or behind nat.
func (h *Host) attach(ctx context.Context, nat *NAT) error {
	n := h.net
	h.mu.Lock()
	had := h.ip.IsValid()
	h.mu.Unlock()
	if had {
		// Deleting one end of a veth pair deletes the other.
		if err := n.ip(ctx, "-n", h.NS, "link", "del", "eth0"); err != nil {
			return err
		}
	}
	var addr netip.Addr
	if nat == nil {
		var err error
		if addr, err = n.plugPublic(ctx, h.NS, "eth0"); err != nil {
			return err
		}
	} else {
		n.mu.Lock()
		nat.nextIn++
		k := nat.nextIn
		n.mu.Unlock()
		if k > 250 {
			return errors.New("netnstest: NAT network full")
		}
		addr = netip.AddrFrom4([4]byte{10, byte(nat.index), 0, byte(k + 1)})
		port := fmt.Sprintf("h%d", k)
		steps := [][]string{
			{"-n", nat.NS, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", h.NS},
			{"-n", nat.NS, "link", "set", port, "master", "lan"},
			{"-n", nat.NS, "link", "set", port, "up"},
			{"-n", h.NS, "addr", "add", addr.String() + "/24", "dev", "eth0"},
			{"-n", h.NS, "link", "set", "eth0", "up"},
			{"-n", h.NS, "route", "add", "default", "via", nat.gateway().String()},
		}
		for _, s := range steps {
			if err := n.ip(ctx, s...); err != nil {
				return err
			}
		}
	}
	h.mu.Lock()
	h.ip, h.nat = addr, nat
	h.mu.Unlock()
	return nil
}
