package th

import (
	"context"
	"crypto/rand"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/internal/gitcfg"
	"github.com/git-remote-daemon/git-remote-daemon/internal/thnode"
	"github.com/git-remote-daemon/git-remote-daemon/internal/transport"
	"github.com/git-remote-daemon/git-remote-daemon/telehash"
	"github.com/git-remote-daemon/git-remote-daemon/watch"
)

// hangGuard bounds every wait; it is no speed target.
const hangGuard = 20 * time.Second

func git(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

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

func freeUDPPort(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return strconv.Itoa(c.LocalAddr().(*net.UDPAddr).Port)
}

// TestWatcherFollowsTheNode: when RELOAD moves the daemon's node (here
// to a fixed port), a watcher whose remote did not change goes on over
// the new node without ending its watch, and reports what changes next.
func TestWatcherFollowsTheNode(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	t.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	ctx, cancel := context.WithTimeout(context.Background(), 3*hangGuard)
	defer cancel()

	// Bob serves a repository to anyone.
	bobRepo := filepath.Join(home, "bob")
	git(t, "", "init", "-q", bobRepo)
	commit := func(msg string) {
		git(t, bobRepo, "-c", "user.name=T", "-c", "user.email=t@example.org", "commit", "-q", "--allow-empty", "-m", msg)
	}
	commit("one")
	bobID, err := telehash.GenerateIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	bob, err := thnode.Start(ctx, thnode.Options{Identity: bobID, Listen: "127.0.0.1:0", GitDir: filepath.Join(bobRepo, ".git"),
		Allow: func(telehash.Hashname) bool { return true }})
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()

	// Alice's daemon watches Bob over its node service.
	aliceRepo := filepath.Join(home, "alice")
	git(t, "", "init", "-q", aliceRepo)
	gitDir := filepath.Join(aliceRepo, ".git")
	svc := thnode.NewService(thnode.ServiceOptions{Dir: aliceRepo, GitDir: gitDir, CommonDir: gitDir})
	defer svc.Close()
	bobURL := bob.Addr().String()
	cfg := config(t, "remote.bob.url", bobURL)
	if err := svc.Configure(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	d := &Dialer{Nodes: svc}
	w, err := d.NewWatcher(gitcfg.Remote{Name: "bob", URL: bobURL}, transport.Env{Dir: aliceRepo, Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	updates := make(chan watch.Update, 16)
	ended := make(chan error, 1)
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	go func() {
		ended <- w.Watch(wctx, func(u watch.Update) error { updates <- u; return nil })
	}()
	next := func() watch.Update {
		t.Helper()
		select {
		case u := <-updates:
			return u
		case err := <-ended:
			t.Fatalf("the watch ended: %v", err)
		case <-time.After(hangGuard):
			t.Fatalf("no update within %s", hangGuard)
		}
		return watch.Update{}
	}
	if u := next(); !u.First {
		t.Fatalf("first update %+v", u)
	}

	old := svc.Node()
	if err := svc.Configure(ctx, config(t, "remote.bob.url", bobURL, "remotedaemon.thlisten", "127.0.0.1:"+freeUDPPort(t))); err != nil {
		t.Fatal(err)
	}
	if svc.Node() == old {
		t.Fatal("the node did not move")
	}
	commit("two")
	u := next()
	if u.First || len(u.Changes) != 1 || u.Changes[0].Ref != "refs/heads/"+branch(t, bobRepo) {
		t.Fatalf("after the move: %+v, want one change of the branch", u)
	}
	wcancel()
	if err := <-ended; err != nil {
		t.Fatalf("watch: %v", err)
	}
}

func branch(t *testing.T, dir string) string {
	t.Helper()
	out, err := exec.Command("git", "-C", dir, "symbolic-ref", "--short", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}
