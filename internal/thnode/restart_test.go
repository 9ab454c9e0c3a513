package thnode

import (
	"context"
	"crypto/rand"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/internal/notify"
	"github.com/git-remote-daemon/git-remote-daemon/telehash"
)

// TestRedialAfterPeerRestart: a node that restarts (same identity, same
// port, fresh sessions) is reached again after the dialer forgets the
// stale session.
func TestRedialAfterPeerRestart(t *testing.T) {
	dir := t.TempDir()
	repo := filepath.Join(dir, "r.git")
	if out, err := exec.Command("git", "init", "-q", "--bare", repo).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	aid, _ := telehash.GenerateIdentity(rand.Reader)
	bid, _ := telehash.GenerateIdentity(rand.Reader)
	allowB := func(h telehash.Hashname) bool { return h == bid.Hashname() }
	a, err := Start(ctx, Options{Identity: aid, Listen: "127.0.0.1:0", Allow: allowB, GitDir: repo})
	if err != nil {
		t.Fatal(err)
	}
	addr := a.Addr()
	b, err := Start(ctx, Options{Identity: bid, Listen: "127.0.0.1:0", Allow: func(h telehash.Hashname) bool { return h == aid.Hashname() }})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	watchOnce := func() error {
		dctx, dcancel := context.WithTimeout(ctx, 8*time.Second)
		defer dcancel()
		s, err := b.Dial(dctx, addr, ServiceNotify)
		if err != nil {
			return err
		}
		defer s.Close()
		c, err := notify.NewClient(dctx, s, s)
		if err != nil {
			return err
		}
		sub, err := c.Watch("w1", ".")
		if err != nil {
			return err
		}
		select {
		case e := <-sub.Events():
			return e.Err
		case <-dctx.Done():
			return dctx.Err()
		}
	}
	if err := watchOnce(); err != nil {
		t.Fatalf("first watch: %v", err)
	}
	a.Close()
	a2, err := Start(ctx, Options{Identity: aid, Listen: addr.Paths[0].String(), Allow: allowB, GitDir: repo})
	if err != nil {
		t.Fatal(err)
	}
	defer a2.Close()
	b.Mesh.Unlink(aid.Hashname())
	start := time.Now()
	if err := watchOnce(); err != nil {
		t.Fatalf("watch after restart: %v", err)
	}
	t.Logf("re-dialed in %s", time.Since(start))
}
