package pairing

import (
	"context"
	"errors"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/internal/gitcfg"
	"github.com/git-remote-daemon/git-remote-daemon/internal/thnode"
)

// heldResult is how InviteAtHost returned.
type heldResult struct {
	remote string
	peer   thnode.Addr
	err    error
}

// TestInviteAtHost: two repositories of one identity, a's service hosts
// the node and b's registers with it. b invites through the host (the
// lending socket's INVITE): a joiner pairs with the code, b names it, the
// joiner gets b's repository id, and the code is good once. The
// invitation ends when b's request goes (its context), and when b's
// registration ends; either way the host's node can invite again.
func TestInviteAtHost(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	home := ownHome(t)
	port := freePort(t)
	a, b := filepath.Join(home, "a"), filepath.Join(home, "b")
	services := map[string]*thnode.Service{}
	hostInviter := &Inviter{}
	for _, dir := range []string{a, b} {
		git(t, home, "init", "-q", dir)
		git(t, dir, "config", "remotedaemon.thListen", "127.0.0.1:"+strconv.Itoa(port))
		gitDir := filepath.Join(dir, ".git")
		inv := hostInviter
		if dir == b {
			inv = &Inviter{}
		}
		s := thnode.NewService(thnode.ServiceOptions{Dir: dir, GitDir: gitDir, CommonDir: gitDir, Pairing: inv,
			RefreshEvery: 50 * time.Millisecond})
		t.Cleanup(func() { s.Close() })
		cfg, err := gitcfg.Read(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Configure(ctx, cfg); err != nil {
			t.Fatal(err)
		}
		services[dir] = s
	}
	sa, sb := services[a], services[b]
	host := sa.Node()
	if host == nil || sb.Node() != nil || sb.Link() == nil {
		t.Fatalf("host %v, b's node %v and link %v: want a hosting, b through it", host, sb.Node(), sb.Link())
	}
	cfgB, err := gitcfg.Read(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	idB, err := thnode.RepoID(cfgB, filepath.Join(b, ".git"))
	if err != nil {
		t.Fatal(err)
	}

	addToB := func(ctx context.Context, peer thnode.Addr, suggested string) (string, error) {
		return Remote(ctx, b, peer, RemoteOptions{Suggested: suggested})
	}
	invite := func(ctx context.Context, add AddRemote) (<-chan Code, <-chan heldResult) {
		codes, done := make(chan Code, 1), make(chan heldResult, 1)
		go func() {
			remote, peer, err := sb.InviteAtHost(ctx, thnode.HeldInvitation{Timeout: time.Minute, Suggested: "bea",
				Opened: func(s string) error {
					c, err := ParseCode(s)
					if err != nil {
						return err
					}
					codes <- c
					return nil
				},
				Add: add})
			done <- heldResult{remote, peer, err}
		}()
		return codes, done
	}
	code := func(codes <-chan Code, done <-chan heldResult) Code {
		t.Helper()
		select {
		case c := <-codes:
			return c
		case r := <-done:
			t.Fatalf("no code: %v", r.err)
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
		panic("unreachable")
	}

	codes, done := invite(ctx, addToB)
	c := code(codes, done)
	if ca, err := c.Addr(); err != nil || ca.Hashname != host.Addr().Hashname {
		t.Errorf("the code names %s (%v), not the host's node", ca.Hashname, err)
	}
	carol := newSide(t)
	joined, err := Join(ctx, carol.dial, carol.self(), c, "carol")
	if err != nil {
		t.Fatal(err)
	}
	if joined.Inviter.Hashname != host.Addr().Hashname || joined.Inviter.Repo != idB || joined.Suggested != "bea" {
		t.Errorf("joined %s repo %q suggested %q; want the host's node, b's repository %q, bea",
			joined.Inviter.Hashname, joined.Inviter.Repo, joined.Suggested, idB)
	}
	r := <-done
	if r.err != nil || r.remote != "carol" || r.peer.Hashname != carol.node.Addr().Hashname {
		t.Fatalf("InviteAtHost = %q, %s, %v", r.remote, r.peer.Hashname, r.err)
	}
	if got := git(t, b, "config", "remote.carol.url"); got != carol.self().String() {
		t.Errorf("b's remote names %q, want %q", got, carol.self())
	}
	if out := gitMaybe(a, "config", "remote.carol.url"); out != "" {
		t.Errorf("a has a remote for carol: %q", out)
	}
	if p := host.Permission(carol.node.Addr().Hashname); p < thnode.Read {
		t.Errorf("the host's node gives carol %v, want read (b's new remote)", p)
	}
	// Once only.
	if _, err := Join(ctx, carol.dial, carol.self(), c, "carol"); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "no invitation is open") {
		t.Errorf("the code again: %v", err)
	}

	// b failing to add the remote fails the pairing on both sides.
	codes, done = invite(ctx, func(context.Context, thnode.Addr, string) (string, error) { return "", errors.New("no room") })
	dave := newSide(t)
	if _, err := Join(ctx, dave.dial, dave.self(), code(codes, done), "dave"); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "could not add a remote") {
		t.Errorf("joining when b cannot add the remote: %v", err)
	}
	if r := <-done; r.err == nil || r.err.Error() != "no room" {
		t.Errorf("InviteAtHost = %v, want b's own error", r.err)
	}

	// b's request going ends the invitation; the host may invite again.
	ictx, icancel := context.WithCancel(ctx)
	codes, done = invite(ictx, addToB)
	code(codes, done)
	if _, err := hostInviter.Open(host, InviteOptions{Add: carol.add}); !errors.Is(err, ErrBusy) {
		t.Fatalf("the host opened an invitation while b's was open: %v", err)
	}
	icancel()
	if r := <-done; r.err == nil {
		t.Fatal("a cancelled invitation paired")
	}
	hostFree(t, ctx, hostInviter, host, carol)

	// So does b's registration ending (its daemon stops).
	codes, done = invite(ctx, addToB)
	code(codes, done)
	sb.Close()
	if r := <-done; r.err == nil {
		t.Fatal("an invitation outlived its registration")
	}
	hostFree(t, ctx, hostInviter, host, carol)
}

// ownHome gives the test a HOME (and so a user identity) and a runtime
// directory (the lending socket's) of its own.
func ownHome(t *testing.T) string {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	t.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	return home
}

// TestInviteAtClientHost: when git-remote-th (a thnode.Client) hosts the
// identity's node, a daemon registered with it can invite too.
func TestInviteAtClientHost(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	home := ownHome(t)
	idPath, err := thnode.IdentityPath()
	if err != nil {
		t.Fatal(err)
	}
	us, err := thnode.LoadOrCreate(idPath)
	if err != nil {
		t.Fatal(err)
	}
	// git-remote-th of our identity fetches from Carol: it hosts the node.
	carol := newSide(t)
	carol.mu.Lock()
	carol.perm[us.Hashname()] = thnode.Read
	carol.mu.Unlock()
	client := &thnode.Client{Identity: us, IdentityPath: idPath, LinkTimeout: 3 * time.Second, Pairing: &Inviter{}}
	defer client.Close()
	st, err := client.Dial(ctx, carol.node.Addr(), thnode.ServiceGit)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()

	b := filepath.Join(home, "b")
	git(t, home, "init", "-q", b)
	git(t, b, "config", "remotedaemon.thListen", "127.0.0.1:0")
	gitDir := filepath.Join(b, ".git")
	sb := thnode.NewService(thnode.ServiceOptions{Dir: b, GitDir: gitDir, CommonDir: gitDir, Pairing: &Inviter{}})
	defer sb.Close()
	cfg, err := gitcfg.Read(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if err := sb.Configure(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if sb.Node() != nil || sb.Link() == nil {
		t.Fatalf("b's node %v and link %v: want b through git-remote-th's node", sb.Node(), sb.Link())
	}
	idB, err := thnode.RepoID(cfg, gitDir)
	if err != nil {
		t.Fatal(err)
	}
	codes := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		_, _, err := sb.InviteAtHost(ctx, thnode.HeldInvitation{
			Opened: func(c string) error { codes <- c; return nil },
			Add: func(ctx context.Context, peer thnode.Addr, suggested string) (string, error) {
				return Remote(ctx, b, peer, RemoteOptions{Suggested: suggested})
			}})
		done <- err
	}()
	var text string
	select {
	case text = <-codes:
	case err := <-done:
		t.Fatalf("no code: %v", err)
	}
	c, err := ParseCode(text)
	if err != nil {
		t.Fatal(err)
	}
	dave := newSide(t)
	joined, err := Join(ctx, dave.dial, dave.self(), c, "dave")
	if err != nil {
		t.Fatal(err)
	}
	if joined.Inviter.Hashname != us.Hashname() || joined.Inviter.Repo != idB {
		t.Errorf("joined %s repo %q, want %s repo %q", joined.Inviter.Hashname, joined.Inviter.Repo, us.Hashname(), idB)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := git(t, b, "config", "remote.dave.url"); got != dave.self().String() {
		t.Errorf("b's remote names %q, want %q", got, dave.self())
	}
}

// hostFree waits until the host's inviter can open an invitation (the
// held one ended), and closes it.
func hostFree(t *testing.T, ctx context.Context, m *Inviter, host *thnode.Node, s *side) {
	t.Helper()
	for {
		i, err := m.Open(host, InviteOptions{Add: s.add})
		if err == nil {
			i.Wait(canceled())
			return
		}
		if !errors.Is(err, ErrBusy) || ctx.Err() != nil {
			t.Fatalf("the host cannot invite: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// gitMaybe is git's output, "" when it fails.
func gitMaybe(dir string, args ...string) string {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	out, _ := cmd.Output()
	return strings.TrimSpace(string(out))
}

func freePort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}
