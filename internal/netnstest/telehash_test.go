package netnstest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/telehash"
)

// thNode is a telehash mesh run as a helper inside a host, driven by
// lines on stdin (NETNSTEST_HELPER=thnode):
//
//	router JSON        AddRouter with that LinkInfo            -> ok | error ...
//	link JSON          Link to a peer with that LinkInfo       -> ok | error ...
//	echo HASHNAME N [D] stream N random bytes to the peer's echo and check them, within D (default 15s) -> ok | error ...
//	stats              the mesh's routing stats as JSON
//
// It prints "ready KEYS" (its keys as JSON) first; it echoes every
// stream opened to it; NETNSTEST_ROUTER=1 makes it a router for every
// peer it has a link with.
func thNode(addr string, router bool, in io.Reader, out io.Writer) int {
	ctx := context.Background()
	id, err := telehash.GenerateIdentity(rand.Reader)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	opts := telehash.MeshOptions{Listen: addr, Allow: func(telehash.Hashname) bool { return true }}
	opts.Router = router
	m, err := telehash.NewMesh(ctx, id, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer m.Close()
	m.Handle(telehash.StreamType, func(c *telehash.Channel) {
		s, err := telehash.NewStream(ctx, c)
		if err != nil {
			return
		}
		defer s.Close()
		data, _ := io.ReadAll(s)
		_, _ = s.Write(data)
		_ = s.CloseWrite()
	})
	keys, _ := json.Marshal(id.Keys())
	fmt.Fprintf(out, "ready %s\n", keys)
	sc := bufio.NewScanner(in)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		verb, arg, _ := strings.Cut(sc.Text(), " ")
		var err error
		reply := "ok"
		switch verb {
		case "router", "link":
			var info telehash.LinkInfo
			if err = json.Unmarshal([]byte(arg), &info); err != nil {
				break
			}
			lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			if verb == "router" {
				_, err = m.AddRouter(ctx, info)
			} else {
				_, err = m.Link(lctx, info)
			}
			cancel()
		case "echo":
			f := append(strings.Fields(arg), "", "")
			size, _ := strconv.Atoi(f[1])
			limit, perr := time.ParseDuration(f[2])
			if perr != nil {
				limit = 15 * time.Second
			}
			start := time.Now()
			err = echoThrough(ctx, m, telehash.Hashname(f[0]), size, limit)
			reply = fmt.Sprintf("ok %v", time.Since(start).Round(time.Millisecond))
		case "stats":
			b, _ := json.Marshal(m.Stats().RoutingStats)
			reply = string(b)
		default:
			err = fmt.Errorf("unknown verb %q", verb)
		}
		if err != nil {
			reply = "error " + strings.ReplaceAll(err.Error(), "\n", " ")
		}
		fmt.Fprintln(out, reply)
	}
	return 0
}

func echoThrough(ctx context.Context, m *telehash.Mesh, hn telehash.Hashname, size int, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	s, err := m.OpenStream(ctx, hn, nil)
	if err != nil {
		return err
	}
	defer s.Close()
	data := make([]byte, size)
	_, _ = rand.Read(data)
	errc := make(chan error, 1)
	go func() {
		if _, err := s.Write(data); err != nil {
			errc <- err
			return
		}
		errc <- s.CloseWrite()
	}()
	back, err := io.ReadAll(s)
	if err != nil {
		return err
	}
	if err := <-errc; err != nil {
		return err
	}
	if !bytes.Equal(back, data) {
		return fmt.Errorf("echo: %d bytes back, not the %d sent", len(back), len(data))
	}
	return nil
}

// thProc is a running thNode.
type thProc struct {
	t    *testing.T
	in   io.Writer
	out  *bufio.Scanner
	keys map[string]string
	kill func()
}

func startTH(t *testing.T, n *Net, h *Host, addr string, router bool) *thProc {
	t.Helper()
	c := h.Command(context.Background(), os.Args[0])
	c.Env = append(c.Env, "NETNSTEST_HELPER=thnode", "NETNSTEST_ADDR="+addr, fmt.Sprintf("NETNSTEST_ROUTER=%v", router))
	c.Stderr = os.Stderr
	in, err := c.StdinPipe()
	check(t, err)
	stdout, err := c.StdoutPipe()
	check(t, err)
	check(t, n.Start(c))
	sc := bufio.NewScanner(stdout)
	sc.Buffer(nil, 1<<20)
	if !sc.Scan() {
		t.Fatalf("thnode in %s did not start", h.Name)
	}
	keys, ok := strings.CutPrefix(sc.Text(), "ready ")
	p := &thProc{t: t, in: in, out: sc, kill: func() { _ = c.Process.Kill() }}
	if !ok || json.Unmarshal([]byte(keys), &p.keys) != nil {
		t.Fatalf("thnode in %s: %q", h.Name, sc.Text())
	}
	return p
}

func (p *thProc) do(line string) string {
	p.t.Helper()
	if _, err := fmt.Fprintln(p.in, line); err != nil {
		p.t.Fatal(err)
	}
	if !p.out.Scan() {
		p.t.Fatalf("thnode ended at %q", line)
	}
	return p.out.Text()
}

func (p *thProc) hashname() string {
	p.t.Helper()
	hn, err := telehash.HashnameFromBase32Keys(p.keys)
	if err != nil {
		p.t.Fatal(err)
	}
	return string(hn)
}

func info(keys map[string]string, addr netip.AddrPort) string {
	li := telehash.LinkInfo{Keys: keys}
	if addr.IsValid() {
		li.Paths = []telehash.Path{{Type: "udp4", IP: addr.Addr().String(), Port: int(addr.Port())}}
	}
	b, _ := json.Marshal(li)
	return string(b)
}

// Telehash routing through real NATs (package telehash, MeshOptions.Router,
// AddRouter): Alice and Bob, each behind their own NAT, know only each
// other's keys and a router on the public network. Behind home routers
// the router's introduction ends on a direct (hole-punched) path that
// outlives the router; behind `masquerade random` NATs the router relays.
func TestTelehashRoutingThroughNATs(t *testing.T) {
	for _, random := range []bool{false, true} {
		t.Run(map[bool]string{false: "home-routers", true: "random"}[random], func(t *testing.T) {
			ctx := context.Background()
			n := New(t)
			rt := must[*Host](t)(n.PublicHost(ctx, "rt"))
			na := must[*NAT](t)(n.NewNAT(ctx, "na", NATOptions{Random: random}))
			nb := must[*NAT](t)(n.NewNAT(ctx, "nb", NATOptions{Random: random}))
			alice := must[*Host](t)(na.Host(ctx, "alice"))
			bob := must[*Host](t)(nb.Host(ctx, "bob"))
			r := startTH(t, n, rt, "0.0.0.0:7000", true)
			a := startTH(t, n, alice, "0.0.0.0:0", false)
			b := startTH(t, n, bob, "0.0.0.0:0", false)
			rinfo := info(r.keys, netip.AddrPortFrom(rt.IP(), 7000))
			for who, p := range map[string]*thProc{"alice": a, "bob": b} {
				if got := p.do("router " + rinfo); got != "ok" {
					t.Fatalf("%s: router: %s", who, got)
				}
			}
			if got := a.do("link " + info(b.keys, netip.AddrPort{})); got != "ok" {
				t.Fatalf("alice links to bob: %s", got)
			}
			for i := range 3 {
				if got := a.do("echo " + b.hashname() + " 262144"); !strings.HasPrefix(got, "ok") {
					t.Fatalf("echo %d: %s", i, got)
				} else {
					t.Logf("echo 256 KiB with the router: %s", got)
				}
				time.Sleep(500 * time.Millisecond)
			}
			var st telehash.RoutingStats
			check(t, json.Unmarshal([]byte(r.do("stats")), &st))
			t.Logf("router: %+v", st)
			if random && st.Relayed == 0 {
				t.Errorf("behind random NATs nothing was relayed: %+v", st)
			}
			r.kill()
			got := a.do("echo " + b.hashname() + " 262144 5s")
			t.Logf("echo without the router: %s", got)
			switch {
			case !random && !strings.HasPrefix(got, "ok"):
				t.Errorf("behind home routers, without the router: %s (no direct path)", got)
			case random && strings.HasPrefix(got, "ok"):
				t.Errorf("behind random NATs, without the router: %s (a direct path?)", got)
			}
		})
	}
}

// Bob, linked to Alice directly through their home routers after the
// router's introduction, moves behind another NAT (a new public address
// that Alice's router drops until both punch again): Alice's echo gets
// through again within seconds, and Bob's too.
func TestTelehashRoamingThroughNATs(t *testing.T) {
	ctx := context.Background()
	n := New(t)
	rt := must[*Host](t)(n.PublicHost(ctx, "rt"))
	na := must[*NAT](t)(n.NewNAT(ctx, "na", NATOptions{}))
	nb := must[*NAT](t)(n.NewNAT(ctx, "nb", NATOptions{}))
	cafe := must[*NAT](t)(n.NewNAT(ctx, "cafe", NATOptions{}))
	alice := must[*Host](t)(na.Host(ctx, "alice"))
	bob := must[*Host](t)(nb.Host(ctx, "bob"))
	r := startTH(t, n, rt, "0.0.0.0:7000", true)
	a := startTH(t, n, alice, "0.0.0.0:0", false)
	b := startTH(t, n, bob, "0.0.0.0:0", false)
	rinfo := info(r.keys, netip.AddrPortFrom(rt.IP(), 7000))
	for who, p := range map[string]*thProc{"alice": a, "bob": b} {
		if got := p.do("router " + rinfo); got != "ok" {
			t.Fatalf("%s: router: %s", who, got)
		}
	}
	if got := a.do("link " + info(b.keys, netip.AddrPort{})); got != "ok" {
		t.Fatalf("alice links to bob: %s", got)
	}
	if got := a.do("echo " + b.hashname() + " 65536"); !strings.HasPrefix(got, "ok") {
		t.Fatalf("echo: %s", got)
	}
	time.Sleep(time.Second)
	check(t, bob.MoveTo(ctx, cafe))
	moved := time.Now()
	if got := a.do("echo " + b.hashname() + " 65536 20s"); !strings.HasPrefix(got, "ok") {
		t.Fatalf("alice to bob after his move: %s after %v", got, time.Since(moved).Round(time.Millisecond))
	}
	t.Logf("alice reached bob %v after his move", time.Since(moved).Round(time.Millisecond))
	if got := b.do("echo " + a.hashname() + " 65536 10s"); !strings.HasPrefix(got, "ok") {
		t.Fatalf("bob to alice after his move: %s", got)
	}
}
