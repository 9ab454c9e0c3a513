package thnode

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/helper"
	"github.com/git-remote-daemon/git-remote-daemon/internal/gitcfg"
	"github.com/git-remote-daemon/git-remote-daemon/telehash"
)

// TestPermissions: a peer named in a th:: remote reads; it writes when
// a remote naming it (any of them) has daemonAllowPush true; nobody else
// gets anything.
func TestPermissions(t *testing.T) {
	bobID, daveID := identity(t), identity(t)
	bob, dave, carol := thURL(bobID), thURL(daveID), identity(t).Hashname()
	for _, tc := range []struct {
		name      string
		kv        []string
		bob, dave Permission
	}{
		{"unset", []string{"remote.bob.url", bob}, Read, None},
		{"false", []string{"remote.bob.url", bob, "remote.bob.daemonallowpush", "false"}, Read, None},
		{"true", []string{"remote.bob.url", bob, "remote.bob.daemonallowpush", "true"}, Write, None},
		{"bad value", []string{"remote.bob.url", bob, "remote.bob.daemonallowpush", "maybe"}, Read, None},
		{"per remote", []string{"remote.bob.url", bob, "remote.bob.daemonallowpush", "true", "remote.dave.url", dave}, Write, Read},
		{"any remote grants", []string{"remote.ro.url", bob, "remote.rw.url", bob, "remote.rw.daemonallowpush", "true", "remote.ro2.url", bob}, Write, None},
		{"second URL", []string{"remote.r.url", dave, "remote.r.url", bob, "remote.r.daemonallowpush", "true"}, Write, Write},
		{"insteadOf", []string{"url.th::.insteadof", "peer:", "remote.bob.url", "peer:" + bob[len(Scheme):], "remote.bob.daemonallowpush", "on"}, Write, None},
		{"not th::", []string{"remote.bob.url", "/srv/x.git", "remote.bob.daemonallowpush", "true"}, None, None},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var a AllowList
			a.Set(config(t, tc.kv...))
			if got := a.Permission(bobID.Hashname()); got != tc.bob {
				t.Errorf("bob: %s, want %s", got, tc.bob)
			}
			if got := a.Permission(daveID.Hashname()); got != tc.dave {
				t.Errorf("dave: %s, want %s", got, tc.dave)
			}
			if a.Permission(carol) != None || a.Allowed(carol) {
				t.Error("a peer named nowhere is allowed")
			}
			if a.Allowed(bobID.Hashname()) != (tc.bob >= Read) {
				t.Errorf("Allowed(bob) = %v with %s", a.Allowed(bobID.Hashname()), tc.bob)
			}
		})
	}
}

// TestAllowListLowered: Set reports the peers whose permission went
// down (write to read, read to none), not those that kept or gained.
func TestAllowListLowered(t *testing.T) {
	bobID, daveID := identity(t), identity(t)
	bob, dave := thURL(bobID), thURL(daveID)
	var a AllowList
	if got := a.Set(config(t, "remote.bob.url", bob, "remote.bob.daemonallowpush", "true", "remote.dave.url", dave)); got != nil {
		t.Errorf("first Set lowered %v", got)
	}
	if got := a.Set(config(t, "remote.bob.url", bob, "remote.dave.url", dave, "remote.dave.daemonallowpush", "true")); !slices.Equal(got, []telehash.Hashname{bobID.Hashname()}) {
		t.Errorf("bob write to read, dave read to write: lowered %v", got)
	}
	if got := a.Set(config(t, "remote.bob.url", bob)); !slices.Equal(got, []telehash.Hashname{daveID.Hashname()}) {
		t.Errorf("dave removed: lowered %v", got)
	}
}

// gitRequest opens a git stream from peer to the node at to and sends
// a helper request for service; it returns the stream and the first
// frame of the answer.
func gitRequest(t *testing.T, ctx context.Context, peer *Node, to Addr, service string) (*telehash.Stream, helper.Frame) {
	t.Helper()
	st, err := peer.Dial(ctx, to, ServiceGit)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := (helper.RequestFrame{Service: service}).Encode(st); err != nil {
		t.Fatal(err)
	}
	f, err := helper.ReadFrame(st)
	if err != nil {
		t.Fatalf("%s: %v", service, err)
	}
	return st, f
}

// TestReadOnlyPeerCannotPush: a peer without daemonAllowPush is refused
// receive-pack with an ERROR frame that says what to set, instead of the
// READY frame sent once git runs; it is served upload-pack.
func TestReadOnlyPeerCannotPush(t *testing.T) {
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

	_, f := gitRequest(t, ctx, bob, alice.Addr(), helper.ReceivePack)
	ef, ok := f.(helper.ErrorFrame)
	if !ok {
		t.Fatalf("receive-pack for a read-only peer: %T %+v, want an ERROR frame", f, f)
	}
	want := "not authorized: " + string(alice.Addr().Hashname) + " does not allow " + string(bobID.Hashname()) +
		" to push (the remote naming you needs remote.<name>.daemonAllowPush true)"
	if ef.Message != want {
		t.Errorf("refusal %q, want %q", ef.Message, want)
	}
	if _, f := gitRequest(t, ctx, bob, alice.Addr(), helper.UploadPack); f.Type() != helper.TypeReady {
		t.Errorf("upload-pack for a read-only peer: %T %+v, want READY", f, f)
	}
}

// TestPushRevoked: taking daemonAllowPush away ends the peer's running
// receive-pack (it is told why) and refuses the next, while its notify
// stream and upload-pack go on: after a Configure (RELOAD), and by the
// allow list's own refresh (no RELOAD).
func TestPushRevoked(t *testing.T) {
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
			git(t, dir, "config", "remote.bob.daemonAllowPush", "true")
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
			push, f := gitRequest(t, ctx, bob, alice.Addr(), helper.ReceivePack)
			if f.Type() != helper.TypeReady {
				t.Fatalf("receive-pack for a peer allowed to push: %T %+v, want READY", f, f)
			}
			fetch, f := gitRequest(t, ctx, bob, alice.Addr(), helper.UploadPack)
			if f.Type() != helper.TypeReady {
				t.Fatalf("upload-pack: %T %+v, want READY", f, f)
			}

			git(t, dir, "config", "remote.bob.daemonAllowPush", "false")
			start := time.Now()
			if reload {
				cfg, err := gitcfg.Read(ctx, dir)
				if err != nil {
					t.Fatal(err)
				}
				configure(t, s, cfg)
			}
			// receive-pack, waiting for the pushed refs, sent its
			// advertisement; then comes the end.
			ended := make(chan error, 1)
			go func() {
				for {
					f, err := helper.ReadFrame(push)
					if err != nil {
						ended <- err
						return
					}
					if ef, ok := f.(helper.ErrorFrame); ok {
						ended <- errors.New(ef.Message)
						return
					}
				}
			}()
			select {
			case err := <-ended:
				want := "not authorized: " + string(alice.Addr().Hashname) + " no longer allows " + string(bobID.Hashname()) + " to push"
				if err.Error() != want {
					t.Errorf("the push ended with %q, want %q", err, want)
				}
			case <-time.After(hangGuard):
				t.Fatalf("the push of a peer no longer allowed to push still runs after %s", hangGuard)
			}
			t.Logf("push ended in %s", time.Since(start).Round(time.Millisecond))

			// Its other streams go on: upload-pack still answers, and
			// the notify stream reports the next commit.
			// (a flush: no wants, and upload-pack exits 0).
			if err := (helper.DataFrame{Data: []byte("0000")}).Encode(fetch); err != nil {
				t.Fatalf("upload-pack stream: %v", err)
			}
			if err := (helper.EOFFrame{}).Encode(fetch); err != nil {
				t.Fatalf("upload-pack stream: %v", err)
			}
			for {
				f, err := helper.ReadFrame(fetch)
				if err != nil {
					t.Fatalf("upload-pack stream after the revocation: %v", err)
				}
				if x, ok := f.(helper.ExitFrame); ok {
					if x.Code != 0 {
						t.Fatalf("upload-pack exited %d", x.Code)
					}
					break
				}
			}
			git(t, dir, "-c", "user.name=T", "-c", "user.email=t@example.org", "commit", "-q", "--allow-empty", "-m", "after")
			select {
			case e, ok := <-sub.Events():
				if !ok || e.Err != nil {
					t.Fatalf("the notify stream ended with the push: %v", e.Err)
				}
			case <-time.After(hangGuard):
				t.Fatal("the notify stream reports no change after the push was revoked")
			}

			// The next push is refused before git runs.
			deadline := time.Now().Add(hangGuard) // the refresh's first tick, without reload
			for {
				_, f := gitRequest(t, ctx, bob, alice.Addr(), helper.ReceivePack)
				if ef, ok := f.(helper.ErrorFrame); ok {
					if !strings.Contains(ef.Message, "does not allow") {
						t.Errorf("refusal %q", ef.Message)
					}
					break
				}
				if reload || time.Now().After(deadline) {
					t.Fatalf("a push after the revocation: %T %+v, want an ERROR frame", f, f)
				}
				time.Sleep(50 * time.Millisecond)
			}
			if !bob.Mesh.Up(alice.Addr().Hashname) {
				t.Error("the revocation of push ended the peer's session")
			}
		})
	}
}
