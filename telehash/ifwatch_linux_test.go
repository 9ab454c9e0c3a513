package telehash

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"
)

// TestInterfaceWatcherNetlink: in a network namespace of its own (the
// test binary runs itself there), a mesh bound to 0.0.0.0 whose poll
// would come only in an hour sees an address added to an interface and
// removed again: the kernel's netlink events tell it. Needs root and
// ip(8) (iproute2); skipped without them, failed under GRD_REQUIRE_PEERS=1.
func TestInterfaceWatcherNetlink(t *testing.T) {
	if os.Getenv("TELEHASH_IFWATCH_CHILD") != "" {
		ifwatchChild(t)
		return
	}
	_, err := exec.LookPath("ip")
	if err != nil || os.Geteuid() != 0 {
		if os.Getenv("GRD_REQUIRE_PEERS") != "" {
			t.Fatalf("needs root and ip(8) for a network namespace (euid %d, ip: %v)", os.Geteuid(), err)
		}
		t.Skip("needs root and ip(8) for a network namespace")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var b [4]byte
	_, _ = rand.Read(b[:])
	ns := "thifw-" + hex.EncodeToString(b[:])
	if out, err := exec.CommandContext(ctx, "ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	defer func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del: %v: %s", err, out)
		}
	}()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, os.Args[0],
		"-test.run", "^TestInterfaceWatcherNetlink$", "-test.count", "1", "-test.v")
	cmd.Env = append(os.Environ(), "TELEHASH_IFWATCH_CHILD=1")
	out, err := cmd.CombinedOutput()
	t.Logf("in namespace %s:\n%s", ns, out)
	if err != nil {
		t.Fatal(err)
	}
}

// ifwatchChild is the test inside the namespace.
func ifwatchChild(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	ip("link", "set", "lo", "up")
	ifacePoll = time.Hour // this process runs this test only
	m := newTestMesh(t, "ifw-netns", MeshOptions{Listen: "0.0.0.0:0"})
	if !m.ifw.subscribed.Load() {
		t.Fatal("no netlink subscription")
	}
	has := func(a netip.Addr) bool {
		as, err := net.InterfaceAddrs()
		return err == nil && slices.Contains(addrSet(as, nil), a)
	}
	added := netip.MustParseAddr("10.77.0.1")
	ip("addr", "add", added.String()+"/32", "dev", "lo")
	waitUntil(t, ctx, "the added address seen", func() bool { return m.ifw.changes.Load() == 1 })
	if !has(added) {
		t.Fatal("the address is not there")
	}
	ip("addr", "del", added.String()+"/32", "dev", "lo")
	waitUntil(t, ctx, "the removed address seen", func() bool { return m.ifw.changes.Load() == 2 })
	ip("link", "add", "thifw0", "type", "veth", "peer", "name", "thifw1")
	ip("addr", "add", "2001:db8::77/64", "dev", "thifw0", "nodad")
	ip("link", "set", "thifw0", "up")
	waitUntil(t, ctx, "the new interface's addresses seen", func() bool { return m.ifw.changes.Load() >= 3 })
	if p := m.ifw.polls.Load(); p != 0 {
		t.Fatalf("%d polls", p)
	}
	t.Logf("%d address reads after %d changes, no poll", m.ifw.events.Load(), m.ifw.changes.Load())
}
