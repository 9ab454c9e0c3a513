// Package netnstest builds real networks for tests out of Linux network
// namespaces: a "public" network (a bridge in its own namespace), hosts
// on it, and NAT routers (nftables masquerade, a home router's inbound
// firewall) with hosts behind them. Commands run inside a host with
// `ip netns exec`, so they see the machine's files and binaries and the
// caller's environment but only the host's network.
//
// It needs root and the ip (iproute2), nft (nftables) and conntrack
// commands; every namespace it creates carries a prefix unique to the
// Net, and Close (or the test's cleanup, with New) stops the processes
// started in them, by pid, and deletes them.
//
// Addresses: the public network is 192.0.2.0/24 (TEST-NET-1); the n-th
// NAT's inside network is 10.n.0.0/24 with the router at 10.n.0.1. The
// namespaces are isolated from the machine's own network, so these never
// clash with it.
package netnstest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// ErrUnsupported is returned where network namespaces are not available
// (not Linux, not root, a command missing).
var ErrUnsupported = errors.New("netnstest: network namespaces unavailable")

// Net is one test's network.
type Net struct {
	prefix string // unique per Net, the start of every namespace name
	pub    string // the public namespace (holds the bridge)

	mu      sync.Mutex
	nss     []string // every namespace created, in order
	hosts   map[string]*Host
	nats    map[string]*NAT
	nextPub int // last public address handed out (192.0.2.x)
	procs   []*exec.Cmd
	closed  bool
}

// Host is a machine with one network interface, on the public network or
// behind a NAT.
type Host struct {
	net  *Net
	Name string
	NS   string // its namespace, for `ip netns exec`

	mu  sync.Mutex
	ip  netip.Addr
	nat *NAT // nil on the public network
}

// NAT is a home router: a namespace with a public address on the public
// network, an inside network for its hosts, masquerade, and a firewall
// that drops unsolicited inbound traffic.
type NAT struct {
	net    *Net
	Name   string
	NS     string
	Public netip.Addr // its address on the public network
	Random bool       // masquerade random: every destination gets a new port
	index  int        // inside network 10.index.0.0/24
	nextIn int        // last inside address handed out
}

// NATOptions configure a NAT.
type NATOptions struct {
	// Random maps every new flow to a random port (`masquerade random`),
	// so that the port a host shows one peer tells nothing about the
	// port it shows another: hole punching cannot work.
	Random bool
}

// New builds an empty public network and removes everything at the
// test's end, failed or not; it fails the test where namespaces are
// unavailable.
func New(t testing.TB) *Net {
	t.Helper()
	n, err := Open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Error(err)
		}
	})
	return n
}

// Open builds an empty public network; the caller must Close it.
func Open(ctx context.Context) (*Net, error) {
	if runtime.GOOS != "linux" {
		return nil, fmt.Errorf("%w: needs Linux", ErrUnsupported)
	}
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("%w: needs root", ErrUnsupported)
	}
	for _, c := range []string{"ip", "nft", "conntrack"} {
		if _, err := exec.LookPath(c); err != nil {
			return nil, fmt.Errorf("%w: %s not found (apt-get install iproute2 nftables conntrack): %w", ErrUnsupported, c, err)
		}
	}
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	n := &Net{prefix: "nt" + hex.EncodeToString(b[:]), hosts: map[string]*Host{}, nats: map[string]*NAT{}}
	n.pub = n.prefix + "-pub"
	err := n.addNS(ctx, n.pub)
	if err == nil {
		err = n.ip(ctx, "-n", n.pub, "link", "add", "br0", "type", "bridge")
	}
	if err == nil {
		err = n.ip(ctx, "-n", n.pub, "link", "set", "br0", "up")
	}
	if err != nil {
		_ = n.Close()
		return nil, err
	}
	return n, nil
}

// Prefix is the start of every namespace name of this Net.
func (n *Net) Prefix() string { return n.prefix }

// Namespaces lists the namespaces of this Net.
func (n *Net) Namespaces() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.nss...)
}

// Close stops the processes started with Start (by pid) and deletes every
// namespace, with the interfaces and NAT state in them.
func (n *Net) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	procs, nss := n.procs, n.nss
	n.mu.Unlock()
	for _, c := range procs {
		if c.Process != nil {
			_ = c.Process.Kill()
			_ = c.Wait()
		}
	}
	var errs []error
	for i := len(nss) - 1; i >= 0; i-- {
		if err := run(context.Background(), "ip", "netns", "del", nss[i]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (n *Net) addNS(ctx context.Context, ns string) error {
	if err := run(ctx, "ip", "netns", "add", ns); err != nil {
		return err
	}
	n.mu.Lock()
	n.nss = append(n.nss, ns)
	n.mu.Unlock()
	if err := n.ip(ctx, "-n", ns, "link", "set", "lo", "up"); err != nil {
		return err
	}
	// No IPv6 on the test networks: only what the test builds.
	return run(ctx, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
}

func (n *Net) ip(ctx context.Context, args ...string) error { return run(ctx, "ip", args...) }

func (n *Net) reserve(name string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return errors.New("netnstest: network closed")
	}
	if !validName(name) {
		return fmt.Errorf("netnstest: bad name %q (letters, digits, up to 12)", name)
	}
	if n.hosts[name] != nil || n.nats[name] != nil {
		return fmt.Errorf("netnstest: %q exists", name)
	}
	return nil
}

func validName(s string) bool {
	if s == "" || len(s) > 12 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// publicAddr hands out the next address on the public network.
func (n *Net) publicAddr() (netip.Addr, string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.nextPub >= 250 {
		return netip.Addr{}, "", errors.New("netnstest: public network full")
	}
	n.nextPub++
	return netip.AddrFrom4([4]byte{192, 0, 2, byte(n.nextPub + 1)}), fmt.Sprintf("p%d", n.nextPub), nil
}

// plugPublic links interface ifname in namespace ns to the public bridge
// with the next public address.
func (n *Net) plugPublic(ctx context.Context, ns, ifname string) (netip.Addr, error) {
	addr, port, err := n.publicAddr()
	if err != nil {
		return netip.Addr{}, err
	}
	steps := [][]string{
		{"-n", n.pub, "link", "add", port, "type", "veth", "peer", "name", ifname, "netns", ns},
		{"-n", n.pub, "link", "set", port, "master", "br0"},
		{"-n", n.pub, "link", "set", port, "up"},
		{"-n", ns, "addr", "add", addr.String() + "/24", "dev", ifname},
		{"-n", ns, "link", "set", ifname, "up"},
	}
	for _, s := range steps {
		if err := n.ip(ctx, s...); err != nil {
			return netip.Addr{}, err
		}
	}
	return addr, nil
}

// Host returns the host or NAT router named name, nil if none.
func (n *Net) Host(name string) *Host {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.hosts[name]
}

// NAT returns the NAT named name, nil if none.
func (n *Net) NAT(name string) *NAT {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.nats[name]
}

// PublicHost adds a host on the public network.
func (n *Net) PublicHost(ctx context.Context, name string) (*Host, error) {
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
	if err := h.attach(ctx, nil); err != nil {
		return nil, err
	}
	return h, nil
}

// IP is the host's current address (private behind a NAT).
func (h *Host) IP() netip.Addr {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ip
}

// Behind is the NAT the host is behind, nil on the public network.
func (h *Host) Behind() *NAT {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.nat
}

// Command is exec.Command run inside the host's namespace, with the
// caller's environment.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return inNS(ctx, h.NS, name, args...)
}

// Start starts c (from Command) and kills it, by pid, at Close if it
// still runs.
func (n *Net) Start(c *exec.Cmd) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return errors.New("netnstest: network closed")
	}
	if err := c.Start(); err != nil {
		return err
	}
	n.procs = append(n.procs, c)
	return nil
}

func inNS(ctx context.Context, ns, name string, args ...string) *exec.Cmd {
	c := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
	c.Env = os.Environ()
	return c
}

// Wrap turns c into the same command run inside namespace ns: `ip netns
// exec` replaces itself with the command, so c's pid is the command's.
func Wrap(ns string, c *exec.Cmd) error {
	ip, err := exec.LookPath("ip")
	if err != nil {
		return err
	}
	c.Args = append([]string{ip, "netns", "exec", ns, c.Path}, c.Args[1:]...)
	c.Path = ip
	return nil
}

func run(ctx context.Context, name string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	c := exec.CommandContext(ctx, name, args...)
	c.Stdout, c.Stderr = &out, &out
	if err := c.Run(); err != nil {
		return fmt.Errorf("netnstest: %s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out.Bytes()))
	}
	return nil
}
