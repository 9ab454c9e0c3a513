package thnode

import (
	"context"
	"errors"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/internal/gitcfg"
	"github.com/git-remote-daemon/git-remote-daemon/internal/notify"
	"github.com/git-remote-daemon/git-remote-daemon/telehash"
)

// twoRepos makes two repositories of one user (one HOME: one identity),
// each with a commit of its own on main.
func twoRepos(t *testing.T) (a, b string) {
	t.Helper()
	a = testRepo(t)
	b = filepath.Join(filepath.Dir(a), "b")
	git(t, "", "init", "-q", "-b", "main", b)
	git(t, b, "-c", "user.name=T", "-c", "user.email=t@example.org", "commit", "-q", "--allow-empty", "-m", "b")
	return a, b
}

// configureFromGit reads dir's configuration and applies it.
func configureFromGit(t *testing.T, ctx context.Context, s *Service, dir string) {
	t.Helper()
	cfg, err := gitcfg.Read(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Configure(ctx, cfg); err != nil {
		t.Fatal(err)
	}
}

// headOf is the commit dir's HEAD names.
func headOf(t *testing.T, dir string) string {
	t.Helper()
	out, err := gitOutput(dir, "rev-parse", "HEAD")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// firstRefs dials to's notify service from peer and returns the refs of
// its first update, or the error.
func firstRefs(ctx context.Context, peer *Node, to Addr) (map[string]string, error) {
	st, err := peer.Dial(ctx, to, ServiceNotify)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	c, err := notify.NewClient(ctx, st, st)
	if err != nil {
		return nil, err
	}
	sub, err := c.Watch("w1", ".")
	if err != nil {
		return nil, err
	}
	select {
	case e, ok := <-sub.Events():
		if !ok {
			return nil, c.Err()
		}
		if e.Err != nil {
			return nil, e.Err
		}
		return e.Update.Refs, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// TestSharedNode: two daemons of one identity share one node. The first
// hosts it, the second registers its repository; a peer named by one
// repository only reaches that one, with or without its name, and never
// the other, even naming it. When the host stops, the second takes over
// on the same port and serves again.
func TestSharedNode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*hangGuard)
	defer cancel()
	a, b := twoRepos(t)
	xID, yID := identity(t), identity(t)
	port := freeUDPPort(t)
	for dir, peer := range map[string]*telehash.Identity{a: xID, b: yID} {
		git(t, dir, "config", "remotedaemon.thListen", "127.0.0.1:"+itoa(port))
		git(t, dir, "remote", "add", "peer", thURL(peer))
	}
	sa, sb := newService(t, a, nil), newService(t, b, nil)
	configureFromGit(t, ctx, sa, a)
	configureFromGit(t, ctx, sb, b)
	host := sa.Node()
	if host == nil || sb.Node() != nil || sb.Link() == nil {
		t.Fatalf("host %v, second's node %v and link %v: want a hosting, b through it", host, sb.Node(), sb.Link())
	}
	to := host.Addr()
	idA, _ := RepoID(mustConfig(t, ctx, a), filepath.Join(a, ".git"))
	idB, _ := RepoID(mustConfig(t, ctx, b), filepath.Join(b, ".git"))
	if idA == "" || idA == idB {
		t.Fatalf("repository ids %q and %q", idA, idB)
	}

	start := func(id *telehash.Identity) *Node {
		n, err := Start(ctx, Options{Identity: id, Listen: "127.0.0.1:0"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		return n
	}
	x, y := start(xID), start(yID)
	named := func(id string) Addr { a := to; a.Repo = id; return a }
	wantRefs := func(peer *Node, addr Addr, head string) {
		t.Helper()
		refs, err := firstRefs(ctx, peer, addr)
		if err != nil {
			t.Fatalf("%s: %v", addr.Repo, err)
		}
		if refs["refs/heads/main"] != head && refs["refs/heads/master"] != head {
			t.Fatalf("%s: refs %v, want %s", addr.Repo, refs, head)
		}
	}
	wantRefused := func(peer *Node, addr Addr) {
		t.Helper()
		_, err := firstRefs(ctx, peer, addr)
		var ce *telehash.ChannelError
		if !errors.As(err, &ce) || ce.Msg != reasonNoRepo {
			t.Fatalf("%s: %v, want the refusal %q", addr.Repo, err, reasonNoRepo)
		}
	}
	wantRefs(x, to, headOf(t, a))
	wantRefs(x, named(idA), headOf(t, a))
	wantRefs(y, to, headOf(t, b)) // served by the host for the daemon of b
	wantRefs(y, named(idB), headOf(t, b))
	wantRefused(x, named(idB))
	wantRefused(x, named("nosuch"))
	wantRefused(y, named(idA))

	// The host stops: b takes over on the same port, and serves y.
	if err := sa.Close(); err != nil {
		t.Fatal(err)
	}
	took := time.Now()
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
	defer wcancel()
	n := sb.Next(wctx, nil)
	if n == nil {
		t.Fatal("b did not take the node over")
	}
	t.Logf("taken over in %s", time.Since(took).Round(time.Millisecond))
	if n.Mesh.Addr() != netip.MustParseAddrPort("127.0.0.1:"+itoa(port)) {
		t.Fatalf("the new host is at %v, want port %d", n.Mesh.Addr(), port)
	}
	y.Mesh.Unlink(to.Hashname) // the old host told it it stopped
	wantRefs(y, to, headOf(t, b))
	x.Mesh.Unlink(to.Hashname)
	dctx, dcancel := context.WithTimeout(ctx, 3*time.Second)
	defer dcancel()
	if _, err := firstRefs(dctx, x, named(idA)); err == nil {
		t.Fatal("a's peer is served after a's daemon stopped")
	}
}

func mustConfig(t *testing.T, ctx context.Context, dir string) *gitcfg.Config {
	t.Helper()
	cfg, err := gitcfg.Read(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestRegisteredRevoke: the host follows the configuration of a
// repository registered by another daemon: a peer whose remote is
// removed there loses its stream without any RELOAD.
func TestRegisteredRevoke(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*hangGuard)
	defer cancel()
	a, b := twoRepos(t)
	yID := identity(t)
	git(t, a, "config", "remotedaemon.thListen", "127.0.0.1:0")
	git(t, b, "remote", "add", "y", thURL(yID))
	sa, sb := newService(t, a, nil), newService(t, b, nil)
	configureFromGit(t, ctx, sa, a)
	configureFromGit(t, ctx, sb, b)
	host := sa.Node()
	if host == nil || sb.Node() != nil {
		t.Fatal("a does not host the node")
	}
	y, err := Start(ctx, Options{Identity: yID, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer y.Close()
	_, sub := watchFrom(t, ctx, y, host.Addr())
	git(t, b, "remote", "remove", "y")
	select {
	case e, ok := <-sub.Events():
		if ok && e.Err == nil {
			t.Fatalf("a revoked peer got %+v", e.Update)
		}
	case <-time.After(hangGuard):
		t.Fatal("the stream of a peer removed from b's remotes is still open")
	}
}

// TestResolve: which repository a request reaches.
func TestResolve(t *testing.T) {
	x, y := telehash.Hashname("x"), telehash.Hashname("y")
	perm := func(who ...telehash.Hashname) func(telehash.Hashname) Permission {
		return func(h telehash.Hashname) Permission {
			for _, w := range who {
				if h == w {
					return Read
				}
			}
			return None
		}
	}
	var rs repoSet
	if _, err := rs.resolve(x, ""); !errors.Is(err, errNoRepo) {
		t.Fatalf("no repository: %v", err)
	}
	ra := &Repo{ID: "ra", Permission: perm(x, y)}
	rb := &Repo{ID: "rb", Permission: perm(y)}
	rs.add(ra)
	rs.add(rb)
	for _, tc := range []struct {
		peer telehash.Hashname
		name string
		want *Repo
		err  error
	}{
		{x, "", ra, nil},
		{x, "ra", ra, nil},
		{x, "rb", nil, errNoRepo},
		{x, "nosuch", nil, errNoRepo},
		{y, "rb", rb, nil},
		{y, "", nil, errAmbiguousReq},
		{"z", "", nil, errNotAllowed},
		{"z", "ra", nil, errNotAllowed},
	} {
		got, err := rs.resolve(tc.peer, tc.name)
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("resolve(%s, %q) = %v, %v; want %v, %v", tc.peer, tc.name, got, err, tc.want, tc.err)
		}
	}
	if _, err := rs.resolve(y, ""); err == nil || !strings.Contains(err.Error(), "repo=ra, repo=rb") {
		t.Errorf("the ambiguity does not name the choices: %v", err)
	}
	rs.remove(ra)
	if got, err := rs.resolve(y, ""); got != rb || err != nil {
		t.Errorf("after removal: %v, %v", got, err)
	}
}

// TestHostListen: a new host binds the port of the last one when its
// own configuration leaves the port open, on the same interfaces only.
func TestHostListen(t *testing.T) {
	for _, tc := range []struct {
		listen, last string
		want         []string
	}{
		{"127.0.0.1:4242", "127.0.0.1:5000", []string{"127.0.0.1:4242"}},
		{"127.0.0.1:0", "127.0.0.1:5000", []string{"127.0.0.1:5000", "127.0.0.1:0"}},
		{"0.0.0.0:0", "[::]:5000", []string{"0.0.0.0:5000", "0.0.0.0:0"}},
		{"127.0.0.1:0", "0.0.0.0:5000", []string{"127.0.0.1:0"}},
		{"127.0.0.1:0", "", []string{"127.0.0.1:0"}},
		{"127.0.0.1:0", "garbage", []string{"127.0.0.1:0"}},
	} {
		got := hostListen(tc.listen, tc.last)
		if strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("hostListen(%q, %q) = %q, want %q", tc.listen, tc.last, got, tc.want)
		}
	}
}

func gitOutput(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	return strings.TrimSpace(string(out)), err
}

// TestSharedNodeMoves: a node whose port nothing fixed moves to the port
// a repository registering later asks for, and serves it there.
func TestSharedNodeMoves(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*hangGuard)
	defer cancel()
	a, b := twoRepos(t)
	yID := identity(t)
	port := freeUDPPort(t)
	git(t, a, "remote", "add", "z", thURL(identity(t))) // a watches only: any port
	git(t, b, "config", "remotedaemon.thListen", "127.0.0.1:"+itoa(port))
	git(t, b, "remote", "add", "y", thURL(yID))
	sa, sb := newService(t, a, nil), newService(t, b, nil)
	configureFromGit(t, ctx, sa, a)
	first := sa.Node()
	if first == nil || int(first.Mesh.Addr().Port()) == port {
		t.Fatalf("a's node: %v", first)
	}
	configureFromGit(t, ctx, sb, b)
	moved := sa.Next(ctx, first)
	if moved == nil || int(moved.Mesh.Addr().Port()) != port {
		t.Fatalf("the node did not move to port %d: %v", port, moved)
	}
	if l := sb.NextLink(ctx, nil); l == nil {
		t.Fatal("b did not register again")
	}
	y, err := Start(ctx, Options{Identity: yID, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer y.Close()
	to := moved.Addr()
	for {
		refs, err := firstRefs(ctx, y, to)
		if err == nil {
			if refs["refs/heads/main"] != headOf(t, b) {
				t.Fatalf("y got %v, want b's", refs)
			}
			break
		}
		// b registers again a moment after the node moved.
		if ctx.Err() != nil {
			t.Fatalf("y is not served b at the moved node: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestMoveTarget(t *testing.T) {
	lo := netip.MustParseAddrPort("127.0.0.1:5000")
	for _, tc := range []struct {
		fixed bool
		want  string
		move  string
	}{
		{false, "127.0.0.1:4242", "127.0.0.1:4242"},
		{true, "127.0.0.1:4242", ""},
		{false, "127.0.0.1:5000", ""},
		{false, "127.0.0.1:0", ""},
		{false, "0.0.0.0:0", "0.0.0.0:5000"},
		{true, "0.0.0.0:0", ""},
		{false, "garbage", ""},
	} {
		if got := moveTarget(lo, tc.fixed, tc.want); got != tc.move {
			t.Errorf("moveTarget(%v, %v, %q) = %q, want %q", lo, tc.fixed, tc.want, got, tc.move)
		}
	}
}

// TestClientHostsThenDaemonTakesOver: git-remote-th hosts the node when
// no daemon runs; a daemon starting meanwhile registers with it, and
// takes the node over when git-remote-th ends.
func TestClientHostsThenDaemonTakesOver(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*hangGuard)
	defer cancel()
	a, b := twoRepos(t)
	idPath, err := IdentityPath()
	if err != nil {
		t.Fatal(err)
	}
	us, err := LoadOrCreate(idPath)
	if err != nil {
		t.Fatal(err)
	}
	peer, err := Start(ctx, Options{Identity: identity(t), Listen: "127.0.0.1:0", GitDir: filepath.Join(b, ".git"),
		Allow: func(h telehash.Hashname) bool { return h == us.Hashname() }})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	c := &Client{Identity: us, IdentityPath: idPath}
	defer c.Close()
	st, err := c.Dial(ctx, peer.Addr(), ServiceNotify)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	if c.ownedNode() == nil {
		t.Fatal("git-remote-th did not host the node, no daemon running")
	}

	git(t, a, "remote", "add", "p", peer.Addr().String())
	sa := newService(t, a, nil)
	configureFromGit(t, ctx, sa, a)
	if sa.Node() != nil || sa.Link() == nil {
		t.Fatal("the daemon did not register with git-remote-th's node")
	}
	s2, err := sa.Link().Dial(ctx, peer.Addr(), ServiceNotify, false)
	if err != nil {
		t.Fatalf("dialling through git-remote-th's node: %v", err)
	}
	s2.Close()

	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
	defer wcancel()
	if sa.Next(wctx, nil) == nil {
		t.Fatal("the daemon did not take the node over from git-remote-th")
	}
}

// TestWaitThroughHost: a daemon using another process's node watches a
// peer known by hashname only: its dial waits until that peer links to
// the node, then goes through.
func TestWaitThroughHost(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*hangGuard)
	defer cancel()
	a, b := twoRepos(t)
	idPath, _ := IdentityPath()
	us, err := LoadOrCreate(idPath)
	if err != nil {
		t.Fatal(err)
	}
	pID := identity(t)
	git(t, a, "config", "remotedaemon.thListen", "127.0.0.1:0")
	git(t, b, "remote", "add", "p", Addr{Hashname: pID.Hashname()}.String())
	sa, sb := newService(t, a, nil), newService(t, b, nil)
	configureFromGit(t, ctx, sa, a)
	configureFromGit(t, ctx, sb, b)
	if sa.Node() == nil || sb.Link() == nil || sb.Node() != nil {
		t.Fatal("a does not host, or b does not use its node")
	}
	dialed := make(chan error, 1)
	go func() {
		st, err := sb.Link().Dial(ctx, Addr{Hashname: pID.Hashname()}, ServiceNotify, true)
		if err == nil {
			_, err = notify.NewClient(ctx, st, st)
			st.Close()
		}
		dialed <- err
	}()
	select {
	case err := <-dialed:
		t.Fatalf("the dial did not wait for the peer: %v", err)
	case <-time.After(700 * time.Millisecond):
	}
	p, err := Start(ctx, Options{Identity: pID, Listen: "127.0.0.1:0", GitDir: filepath.Join(a, ".git"),
		Allow: func(h telehash.Hashname) bool { return h == us.Hashname() }})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := firstRefs(ctx, p, sa.Node().Addr()); err != nil { // p links to us, and reads b
		t.Fatal(err)
	}
	select {
	case err := <-dialed:
		if err != nil {
			t.Fatalf("the waiting dial: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("the waiting dial did not go through once the peer linked")
	}
}
