package thnode

import (
	"context"
	"crypto/rand"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/internal/gitcfg"
	"github.com/git-remote-daemon/git-remote-daemon/internal/notify"
	"github.com/git-remote-daemon/git-remote-daemon/telehash"
)

// hangGuard bounds every wait in these tests; it is no speed target.
const hangGuard = 20 * time.Second

// testRepo is a fresh repository with one commit and its own HOME, so
// that git and the identities stay inside the test.
func testRepo(t *testing.T) string {
	t.Helper()
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	t.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	dir := filepath.Join(home, "r")
	git(t, "", "init", "-q", dir)
	git(t, dir, "-c", "user.name=T", "-c", "user.email=t@example.org", "commit", "-q", "--allow-empty", "-m", "one")
	return dir
}

func git(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func newService(t *testing.T, dir string, read func(context.Context, string) (*gitcfg.Config, error)) *Service {
	t.Helper()
	gitDir := filepath.Join(dir, ".git")
	s := NewService(ServiceOptions{Dir: dir, GitDir: gitDir, CommonDir: gitDir, ReadConfig: read})
	t.Cleanup(func() { s.Close() })
	return s
}

// config parses "key value" pairs as `git config --list` gives them.
func config(t *testing.T, kv ...string) *gitcfg.Config {
	t.Helper()
	var b []byte
	for i := 0; i+1 < len(kv); i += 2 {
		b = append(b, kv[i]+"\n"+kv[i+1]+"\x00"...)
	}
	cfg, err := gitcfg.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func identity(t *testing.T) *telehash.Identity {
	t.Helper()
	id, err := telehash.GenerateIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// thURL is a th:: URL naming id by hashname and key, without a path.
func thURL(id *telehash.Identity) string {
	return Addr{Hashname: id.Hashname(), Keys: id.Keys()}.String()
}

func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// portFree reports whether the UDP port can be bound again.
func portFree(port int) bool {
	c, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", itoa(port)))
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func itoa(i int) string { return strconv.Itoa(i) }

func configure(t *testing.T, s *Service, cfg *gitcfg.Config) *Node {
	t.Helper()
	if err := s.Configure(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	return s.Node()
}

func socketExists(n *Node) bool {
	_, err := os.Stat(SocketPath(n.opts.Identity.Hashname()))
	return err == nil
}

// TestServiceFollowsConfiguration: Configure starts the node for a th::
// remote or remotedaemon.thListen, leaves it alone when nothing it uses
// changed, moves it (port and lending socket) when thListen or
// thIdentity changes, and stops it when neither remains.
func TestServiceFollowsConfiguration(t *testing.T) {
	dir := testRepo(t)
	s := newService(t, dir, nil)
	bob := thURL(identity(t))

	if n := configure(t, s, config(t)); n != nil {
		t.Fatalf("a node without th:: settings: %v", n.Mesh.Addr())
	}
	n1 := configure(t, s, config(t, "remote.bob.url", bob))
	if n1 == nil || !n1.Mesh.Addr().Addr().IsLoopback() {
		t.Fatalf("a th:: remote on loopback: node %v", n1)
	}
	if !socketExists(n1) {
		t.Error("the node is not lent on its socket")
	}
	if n := configure(t, s, config(t, "remote.bob.url", bob, "remote.bob.fetch", "+refs/heads/*:refs/remotes/bob/*")); n != n1 {
		t.Fatal("the node restarted though nothing it uses changed")
	}

	p, q := freeUDPPort(t), freeUDPPort(t)
	next := make(chan *Node, 1)
	go func() { next <- s.Next(context.Background(), n1) }()
	n2 := configure(t, s, config(t, "remote.bob.url", bob, "remotedaemon.thlisten", "127.0.0.1:"+itoa(p)))
	if n2 == n1 || int(n2.Mesh.Addr().Port()) != p {
		t.Fatalf("thListen set: node at %v, want port %d", n2.Mesh.Addr(), p)
	}
	if got := <-next; got != n2 {
		t.Error("Next did not return the new node")
	}
	select {
	case <-n1.Done():
	default:
		t.Error("the old node is not done")
	}
	if !socketExists(n2) {
		t.Error("the moved node is not lent on its socket")
	}

	n3 := configure(t, s, config(t, "remotedaemon.thlisten", "127.0.0.1:"+itoa(q)))
	if int(n3.Mesh.Addr().Port()) != q {
		t.Fatalf("thListen moved: node at %v, want port %d", n3.Mesh.Addr(), q)
	}
	if !portFree(p) {
		t.Errorf("the old port %d is still bound", p)
	}

	n4 := configure(t, s, config(t, "remotedaemon.thlisten", "127.0.0.1:"+itoa(q), "remotedaemon.thidentity", "repository"))
	if n4 == n3 || n4.Addr().Hashname == n3.Addr().Hashname || int(n4.Mesh.Addr().Port()) != q {
		t.Fatalf("thIdentity=repository: node %s at %v", n4.Addr().Hashname, n4.Mesh.Addr())
	}
	if socketExists(n3) {
		t.Error("the user identity's socket outlived its node")
	}

	if n := configure(t, s, config(t)); n != nil {
		t.Fatal("the node still runs without thListen and th:: remotes")
	}
	if !portFree(q) {
		t.Errorf("the port %d is still bound after the node stopped", q)
	}
	if socketExists(n4) {
		t.Error("the socket outlived the node")
	}
}

// TestAllowRunsNoGit: handshakes from unknown keys, which the mesh
// checks on its read loop, cost a lookup, never a git process.
func TestAllowRunsNoGit(t *testing.T) {
	dir := testRepo(t)
	var reads atomic.Int32
	s := newService(t, dir, func(ctx context.Context, dir string) (*gitcfg.Config, error) {
		reads.Add(1)
		return gitcfg.Read(ctx, dir)
	})
	n := configure(t, s, config(t, "remote.bob.url", thURL(identity(t)), "remotedaemon.thlisten", "127.0.0.1:0"))
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(n.Mesh.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const flood = 200
	key := n.opts.Identity.Key(telehash.CS3a)
	for i := 0; i < flood; i++ {
		x, err := telehash.NewExchange(rand.Reader, identity(t), key)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := x.Handshake()
		if err != nil {
			t.Fatal(err)
		}
		pkt, err := telehash.Cloak(rand.Reader, msg, 1)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Write(pkt); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(hangGuard)
	for st := n.Mesh.Stats(); st.DropUnauthorized+st.DropRateLimited+st.DropOverload < flood; st = n.Mesh.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d handshakes refused after %s", n.Mesh.Stats().DropUnauthorized, flood, hangGuard)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if r := reads.Load(); r != 0 {
		t.Fatalf("%d handshakes of unknown peers read the configuration %d times", flood, r)
	}
}

// watchFrom opens a notify stream from peer to the service's node and
// waits for its first refs.
func watchFrom(t *testing.T, ctx context.Context, peer *Node, to Addr) (*telehash.Stream, *notify.Sub) {
	t.Helper()
	st, err := peer.Dial(ctx, to, ServiceNotify)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c, err := notify.NewClient(ctx, st, st)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := c.Watch("w1", ".")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-sub.Events():
		if e.Err != nil {
			t.Fatal(e.Err)
		}
	case <-ctx.Done():
		t.Fatal("no refs from the node")
	}
	return st, sub
}

// TestRevoke: a peer whose remote is removed loses its open notify and
// git streams at once, and gets no later change: after a Configure
// (RELOAD), and by the allow list's own refresh (no RELOAD).
func TestRevoke(t *testing.T) {
	for _, reload := range []bool{true, false} {
		name := "refresh"
		if reload {
			name = "reload"
		}
		t.Run(name, func(t *testing.T) {
			dir := testRepo(t)
			ctx, cancel := context.WithTimeout(context.Background(), 3*hangGuard)
			defer cancel()
			s := newService(t, dir, nil)
			bobID := identity(t)
			git(t, dir, "config", "remotedaemon.thListen", "127.0.0.1:0")
			git(t, dir, "remote", "add", "bob", thURL(bobID))
			cfg, err := gitcfg.Read(ctx, dir)
			if err != nil {
				t.Fatal(err)
			}
			alice := configure(t, s, cfg)
			bob, err := Start(ctx, Options{Identity: bobID, Allow: func(h telehash.Hashname) bool { return h == alice.Addr().Hashname }})
			if err != nil {
				t.Fatal(err)
			}
			defer bob.Close()
			_, sub := watchFrom(t, ctx, bob, alice.Addr())
			gitStream, err := bob.Dial(ctx, alice.Addr(), ServiceGit)
			if err != nil {
				t.Fatal(err)
			}
			defer gitStream.Close()
			for alice.servedTo(bobID.Hashname()) != 2 {
				if ctx.Err() != nil {
					t.Fatalf("alice serves %d streams to bob, want 2", alice.servedTo(bobID.Hashname()))
				}
				time.Sleep(10 * time.Millisecond)
			}

			git(t, dir, "remote", "remove", "bob")
			start := time.Now()
			if reload {
				cfg, err := gitcfg.Read(ctx, dir)
				if err != nil {
					t.Fatal(err)
				}
				configure(t, s, cfg)
			}
			if reload { // revoked when Configure returns: this change is not sent
				git(t, dir, "-c", "user.name=T", "-c", "user.email=t@example.org", "commit", "-q", "--allow-empty", "-m", "after")
			}
			guard := time.After(hangGuard)
		events:
			for {
				select {
				case e, ok := <-sub.Events():
					if !ok || e.Err != nil {
						break events
					}
					t.Fatalf("a revoked peer got %+v", e.Update)
				case <-guard:
					t.Fatalf("the notify stream of a revoked peer is still open after %s", hangGuard)
				}
			}
			if _, err := gitStream.Read(make([]byte, 1)); err == nil {
				t.Fatal("the git stream of a revoked peer still delivers")
			}
			t.Logf("revoked in %s", time.Since(start).Round(time.Millisecond))
			// Bob sees the abort before Alice's serving goroutines have
			// returned and deregistered: give them a moment (a hang guard,
			// not a speed target).
			for wait := time.Now().Add(hangGuard); alice.servedTo(bobID.Hashname()) != 0 && time.Now().Before(wait); {
				time.Sleep(10 * time.Millisecond)
			}
			if n := alice.servedTo(bobID.Hashname()); n != 0 {
				t.Errorf("alice still serves %d streams to bob after %s", n, hangGuard)
			}
			dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
			defer dcancel()
			if st, err := bob.Dial(dctx, alice.Addr(), ServiceNotify); err == nil {
				if _, err := notify.NewClient(dctx, st, st); err == nil {
					t.Error("a revoked peer was served again")
				}
			}
		})
	}
}
