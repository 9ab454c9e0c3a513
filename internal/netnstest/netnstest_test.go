package netnstest

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
)

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func check(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func port(t *testing.T, addrPort string) uint16 {
	t.Helper()
	ap, err := netip.ParseAddrPort(addrPort)
	if err != nil {
		t.Fatalf("not an address: %q", addrPort)
	}
	return ap.Port()
}

// A host behind a NAT reaches a public host from the NAT's address, with
// its own port (plain masquerade keeps it), and the reply comes back; a
// public host cannot reach the private address, and the NAT drops what
// comes in unsolicited.
func TestNAT(t *testing.T) {
	ctx := context.Background()
	n := New(t)
	bob := must[*Host](t)(n.PublicHost(ctx, "bob"))
	home := must[*NAT](t)(n.NewNAT(ctx, "home", NATOptions{}))
	alice := must[*Host](t)(home.Host(ctx, "alice"))
	if !alice.IP().IsPrivate() || alice.Behind() != home || bob.Behind() != nil {
		t.Fatalf("alice %s behind %v, bob behind %v", alice.IP(), alice.Behind(), bob.Behind())
	}
	echo := echoOn(t, n, bob)
	p := newProber(t, n, alice)
	if got, want := p.to(echo), home.Public.String()+":5000"; got != want {
		t.Fatalf("bob saw alice as %s, want %s (the NAT's address)", got, want)
	}
	// Bob cannot send to alice unsolicited: not to her private address
	// (no route), not to the NAT (nothing there, and its firewall drops
	// new flows from outside).
	aliceEcho := echoOn(t, n, alice)
	pb := newProber(t, n, bob)
	if got := pb.to(aliceEcho); got != "timeout" && !strings.HasPrefix(got, "error") {
		t.Fatalf("bob reached alice's private address: %s", got)
	}
	if got := pb.to(home.Public.String() + ":7000"); got != "timeout" && !strings.HasPrefix(got, "error") {
		t.Fatalf("bob reached alice's echo through the NAT unsolicited: %s", got)
	}
}

// Behind `masquerade random` each destination sees another port, where
// a plain NAT shows them all the same one.
func TestRandomNAT(t *testing.T) {
	ctx := context.Background()
	n := New(t)
	bob := must[*Host](t)(n.PublicHost(ctx, "bob"))
	carol := must[*Host](t)(n.PublicHost(ctx, "carol"))
	plain := must[*NAT](t)(n.NewNAT(ctx, "plain", NATOptions{}))
	random := must[*NAT](t)(n.NewNAT(ctx, "random", NATOptions{Random: true}))
	alice := must[*Host](t)(plain.Host(ctx, "alice"))
	dave := must[*Host](t)(random.Host(ctx, "dave"))
	eb, ec := echoOn(t, n, bob), echoOn(t, n, carol)

	pa := newProber(t, n, alice)
	if a, b := pa.to(eb), pa.to(ec); a != b || port(t, a) != 5000 {
		t.Errorf("plain NAT: bob saw %s, carol saw %s; want both %s:5000", a, b, plain.Public)
	}
	pd := newProber(t, n, dave)
	a, b := pd.to(eb), pd.to(ec)
	if !strings.HasPrefix(a, random.Public.String()+":") || !strings.HasPrefix(b, random.Public.String()+":") {
		t.Fatalf("random NAT: bob saw %s, carol saw %s; want the NAT's address %s", a, b, random.Public)
	}
	if port(t, a) == port(t, b) {
		t.Errorf("random NAT: bob and carol saw the same port (%s, %s)", a, b)
	}
	// The mapping holds for later packets of the same flow.
	if again := pd.to(eb); again != a {
		t.Errorf("random NAT: bob saw %s, then %s", a, again)
	}
}

// Two hosts behind their own NATs learn their mappings from a public
// echo server, then both send to the other's mapping: behind home
// routers (port kept, unsolicited inbound dropped before conntrack
// confirms it) both get through; behind `masquerade random` NATs the
// mappings they learned are not the ones the NATs use toward each other,
// and neither does.
func TestHolePunch(t *testing.T) {
	ctx := context.Background()
	for _, random := range []bool{false, true} {
		t.Run(map[bool]string{false: "home-routers", true: "random"}[random], func(t *testing.T) {
			n := New(t)
			echoHost := must[*Host](t)(n.PublicHost(ctx, "echo"))
			na := must[*NAT](t)(n.NewNAT(ctx, "na", NATOptions{Random: random}))
			nb := must[*NAT](t)(n.NewNAT(ctx, "nb", NATOptions{Random: random}))
			alice := must[*Host](t)(na.Host(ctx, "alice"))
			bob := must[*Host](t)(nb.Host(ctx, "bob"))
			echo := echoOn(t, n, echoHost)
			_, ain, aout := helper(t, n, alice, "punch", "0.0.0.0:5000")
			_, bin, bout := helper(t, n, bob, "punch", "0.0.0.0:5000")
			line := func(sc interface {
				Scan() bool
				Text() string
			}) string {
				if !sc.Scan() {
					t.Fatal("punch ended early")
				}
				return sc.Text()
			}
			fmt.Fprintln(ain, echo)
			fmt.Fprintln(bin, echo)
			amap, bmap := line(aout), line(bout)
			fmt.Fprintln(ain, bmap)
			fmt.Fprintln(bin, amap)
			a, b := line(aout), line(bout)
			if !random {
				if a != "got "+bmap || b != "got "+amap {
					t.Errorf("punching through home routers: alice %q (bob's mapping %s), bob %q (alice's %s)", a, bmap, b, amap)
				}
			} else if a != "nothing" || b != "nothing" {
				t.Errorf("punching through random NATs got through: alice %q, bob %q", a, b)
			}
		})
	}
}

// After a flush the NAT has forgotten its mappings: the next packet gets
// a new one (a new port under random).
func TestFlush(t *testing.T) {
	ctx := context.Background()
	n := New(t)
	bob := must[*Host](t)(n.PublicHost(ctx, "bob"))
	nat := must[*NAT](t)(n.NewNAT(ctx, "home", NATOptions{Random: true}))
	alice := must[*Host](t)(nat.Host(ctx, "alice"))
	eb := echoOn(t, n, bob)
	p := newProber(t, n, alice)
	before := p.to(eb)
	if p.to(eb) != before {
		t.Fatal("the mapping changed without a flush")
	}
	check(t, nat.Flush(ctx))
	after := p.to(eb)
	if after == before || port(t, after) == 0 {
		t.Fatalf("after the flush bob saw %s, as before", after)
	}
}

// A host moved behind another NAT (or to the public network) shows the
// new network's address; a NAT that is down passes nothing.
func TestMoveAndDown(t *testing.T) {
	ctx := context.Background()
	n := New(t)
	bob := must[*Host](t)(n.PublicHost(ctx, "bob"))
	home := must[*NAT](t)(n.NewNAT(ctx, "home", NATOptions{}))
	cafe := must[*NAT](t)(n.NewNAT(ctx, "cafe", NATOptions{}))
	alice := must[*Host](t)(home.Host(ctx, "alice"))
	eb := echoOn(t, n, bob)
	p := newProber(t, n, alice)
	if got := p.to(eb); got != home.Public.String()+":5000" {
		t.Fatalf("from home: %s", got)
	}
	old := alice.IP()
	check(t, alice.MoveTo(ctx, cafe))
	if alice.IP() == old || alice.Behind() != cafe {
		t.Fatalf("moved: ip %s (was %s), behind %v", alice.IP(), old, alice.Behind())
	}
	if got := p.to(eb); got != cafe.Public.String()+":5000" {
		t.Fatalf("from the cafe: %s, want %s:5000", got, cafe.Public)
	}
	check(t, alice.MoveTo(ctx, nil))
	if got := p.to(eb); got != alice.IP().String()+":5000" {
		t.Fatalf("from the public network: %s, want %s:5000", got, alice.IP())
	}
	// Back home with a new private address: the NAT still maps the old
	// one's flow to port 5000, so this one gets another port.
	check(t, alice.MoveTo(ctx, home))
	back := p.to(eb)
	if !strings.HasPrefix(back, home.Public.String()+":") || port(t, back) == 5000 {
		t.Fatalf("back home: %s, want %s with another port than 5000", back, home.Public)
	}
	check(t, home.Down(ctx))
	if got := p.to(eb); got != "timeout" && !strings.HasPrefix(got, "error") {
		t.Fatalf("through a NAT that is down: %s", got)
	}
	// Masquerade forgets the mappings of an interface that goes down,
	// as a router that reboots.
	check(t, home.Up(ctx))
	if got := p.to(eb); !strings.HasPrefix(got, home.Public.String()+":") {
		t.Fatalf("after the NAT came back: %s", got)
	}
}

// Everything is gone after the test, also after a failure: namespaces
// (with their interfaces) and the processes started in them.
func TestCleanup(t *testing.T) {
	ctx := context.Background()
	var prefix string
	var sleep *exec.Cmd
	t.Run("build", func(t *testing.T) {
		n := New(t)
		prefix = n.Prefix()
		nat := must[*NAT](t)(n.NewNAT(ctx, "home", NATOptions{Random: true}))
		alice := must[*Host](t)(nat.Host(ctx, "alice"))
		must[*Host](t)(n.PublicHost(ctx, "bob"))
		sleep = alice.Command(ctx, "sleep", "600")
		check(t, n.Start(sleep))
		if got := len(listNS(t, prefix)); got != 4 {
			t.Fatalf("%d namespaces with prefix %s, want 4", got, prefix)
		}
	})
	if left := listNS(t, prefix); len(left) > 0 {
		t.Errorf("namespaces left behind: %v", left)
	}
	if sleep.ProcessState == nil {
		t.Errorf("the process started inside was not stopped")
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", sleep.Process.Pid)); err == nil {
		t.Errorf("pid %d still runs", sleep.Process.Pid)
	}
	// Nothing is left in the root namespace either: interfaces are
	// created inside the namespaces.
	out, err := exec.Command("ip", "-o", "link").Output()
	check(t, err)
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, prefix) {
			t.Errorf("interface left behind: %s", l)
		}
	}
}

// failingTB fails the way a test does (FailNow ends its goroutine) and
// runs its cleanups when told.
type failingTB struct {
	testing.TB
	cleanups []func()
	failed   bool
}

func (f *failingTB) Fatal(args ...any)                 { f.failed = true; runtime.Goexit() }
func (f *failingTB) Fatalf(format string, args ...any) { f.Fatal() }
func (f *failingTB) Cleanup(fn func())                 { f.cleanups = append(f.cleanups, fn) }

// A test that fails half way through building a network leaves nothing.
func TestCleanupAfterFailure(t *testing.T) {
	ctx := context.Background()
	f := &failingTB{TB: t}
	var prefix string
	done := make(chan struct{})
	go func() {
		defer close(done)
		n := New(f)
		prefix = n.Prefix()
		if _, err := n.NewNAT(ctx, "home", NATOptions{}); err != nil {
			t.Error(err)
		}
		_, err := n.NewNAT(ctx, "home", NATOptions{}) // a name taken: fails
		f.Fatalf("%v", err)
	}()
	<-done
	if !f.failed || len(listNS(t, prefix)) != 2 {
		t.Fatalf("failed %v, namespaces %v", f.failed, listNS(t, prefix))
	}
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
	if left := listNS(t, prefix); len(left) > 0 {
		t.Errorf("namespaces left behind: %v", left)
	}
}

func listNS(t *testing.T, prefix string) []string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").Output()
	check(t, err)
	var got []string
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 0 && strings.HasPrefix(f[0], prefix) {
			got = append(got, f[0])
		}
	}
	return got
}
