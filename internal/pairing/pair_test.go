package pairing

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/internal/thnode"
	"github.com/git-remote-daemon/git-remote-daemon/telehash"
)

// side is a node on loopback whose allow list is a map that pairing's
// Add fills.
type side struct {
	node *thnode.Node
	inv  *Inviter
	mu   sync.Mutex
	perm map[telehash.Hashname]thnode.Permission
	adds []string
}

func newSide(t *testing.T) *side {
	t.Helper()
	id, err := telehash.GenerateIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s := &side{inv: &Inviter{}, perm: map[telehash.Hashname]thnode.Permission{}}
	ctx, cancel := context.WithCancel(context.Background())
	n, err := thnode.Start(ctx, thnode.Options{Identity: id, Listen: "127.0.0.1:0", LinkTimeout: 3 * time.Second,
		Pairing: s.inv, GitDir: t.TempDir(),
		Permission: func(h telehash.Hashname) thnode.Permission {
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.perm[h]
		}})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); n.Close() })
	s.node = n
	return s
}

func (s *side) add(_ context.Context, peer thnode.Addr, suggested string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.perm[peer.Hashname] = thnode.Read
	s.adds = append(s.adds, suggested)
	return "peer-" + string(peer.Hashname)[:4], nil
}

func (s *side) self() thnode.Addr {
	a := s.node.Addr()
	a.Paths = nil
	return a
}

func (s *side) dial(ctx context.Context, addr thnode.Addr, service string) (io.ReadWriteCloser, error) {
	return s.node.Dial(ctx, addr, service)
}

func open(t *testing.T, s *side, timeout time.Duration) *Invitation {
	t.Helper()
	i, err := s.inv.Open(s.node, InviteOptions{Timeout: timeout, Add: s.add, Suggested: "alice", Repo: "notes.git"})
	if err != nil {
		t.Fatal(err)
	}
	return i
}

func TestPairJoin(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, b := newSide(t), newSide(t)
	inv := open(t, a, time.Minute)
	if _, err := a.inv.Open(a.node, InviteOptions{Add: a.add}); !errors.Is(err, ErrBusy) {
		t.Fatalf("a second invitation: %v, want ErrBusy", err)
	}
	j, err := Join(ctx, b.dial, b.self(), inv.Code, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if j.Suggested != "alice" || j.Inviter.Hashname != a.node.Addr().Hashname || j.Inviter.Repo != "notes.git" {
		t.Errorf("joined %+v", j)
	}
	r := inv.Wait(ctx)
	if r.Err != nil || r.Peer.Hashname != b.node.Addr().Hashname || !strings.HasPrefix(r.Remote, "peer-") {
		t.Fatalf("result %+v", r)
	}
	if len(a.adds) != 1 || a.adds[0] != "bob" {
		t.Errorf("adds %q", a.adds)
	}
	// The code is spent: a second join (even by the same node) gets
	// nothing, and nothing more is added.
	if _, err := Join(ctx, b.dial, b.self(), inv.Code, "bob"); !errors.Is(err, ErrRefused) {
		t.Fatalf("second join: %v, want refused", err)
	}
	c := newSide(t)
	shortCtx, cancel2 := context.WithTimeout(ctx, 5*time.Second)
	defer cancel2()
	if _, err := Join(shortCtx, c.dial, c.self(), inv.Code, "carol"); err == nil {
		t.Fatal("a stranger joined a spent code")
	}
	if len(a.adds) != 1 {
		t.Errorf("adds %q after the code was spent", a.adds)
	}
}

func TestPairWrongSecretConsumes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, b, c := newSide(t), newSide(t), newSide(t)
	inv := open(t, a, time.Minute)
	wrong := inv.Code
	wrong.Secret[0] ^= 1
	if _, err := Join(ctx, b.dial, b.self(), wrong, "bob"); !errors.Is(err, ErrRefused) {
		t.Fatalf("wrong secret: %v, want refused", err)
	}
	if r := inv.Wait(ctx); !errors.Is(r.Err, ErrWrongSecret) {
		t.Fatalf("result %+v, want ErrWrongSecret", r)
	}
	// The right code no longer works either: the invitation is closed,
	// and a stranger's handshake is not even answered.
	shortCtx, cancel2 := context.WithTimeout(ctx, 5*time.Second)
	defer cancel2()
	if _, err := Join(shortCtx, c.dial, c.self(), inv.Code, "carol"); err == nil {
		t.Fatal("the right code worked after a wrong one")
	}
	if len(a.adds) != 0 {
		t.Errorf("adds %q", a.adds)
	}
	if a.node.Permission(b.node.Addr().Hashname) != thnode.None {
		t.Error("the wrong joiner got a permission")
	}
	// Its session, let in for the pairing, is dropped.
	for deadline := time.Now().Add(5 * time.Second); a.node.Mesh.Up(b.node.Addr().Hashname); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the wrong joiner's session is still up")
		}
	}
}

func TestPairExpires(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, b := newSide(t), newSide(t)
	inv := open(t, a, 200*time.Millisecond)
	if r := inv.Wait(ctx); !errors.Is(r.Err, ErrExpired) {
		t.Fatalf("result %+v, want ErrExpired", r)
	}
	shortCtx, cancel2 := context.WithTimeout(ctx, 5*time.Second)
	defer cancel2()
	if _, err := Join(shortCtx, b.dial, b.self(), inv.Code, "bob"); err == nil {
		t.Fatal("an expired code worked")
	}
	if st := a.node.Mesh.Stats(); st.DropUnauthorized == 0 {
		t.Errorf("the joiner's handshakes were answered after expiry: %+v", st)
	}
}

// A node linked while an invitation is open may open the pair service
// and nothing else.
func TestPairGuestGetsNothingElse(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, b := newSide(t), newSide(t)
	inv := open(t, a, time.Minute)
	addr, err := inv.Code.Addr()
	if err != nil {
		t.Fatal(err)
	}
	for _, svc := range []string{thnode.ServiceGit, thnode.ServiceNotify} {
		s, err := b.node.Dial(ctx, addr, svc)
		if err == nil {
			_, err = s.Read(make([]byte, 1))
			s.Close()
		}
		if err == nil || !strings.Contains(err.Error(), "not authorized") {
			t.Errorf("a guest's %s stream: %v, want not authorized", svc, err)
		}
	}
	done, stop := context.WithCancel(ctx)
	stop()
	if r := inv.Wait(done); !errors.Is(r.Err, context.Canceled) {
		t.Errorf("cancelled: %+v", r)
	}
}
