package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/internal/xmpptest"
)

// TestXMPPClone100MB clones a repository of ~100 MB (random blobs, so
// the pack is as large) over xmpp:: through a throwaway Prosody (the
// default path: a SOCKS5 bytestream through its proxy65), checks the
// clone with git fsck and its commit and tree against the served
// repository, and logs the throughput (go test -v shows it).
func TestXMPPClone100MB(t *testing.T) {
	grd, err := exec.LookPath("git-remote-daemon")
	if err != nil {
		t.Fatalf("git-remote-daemon not on PATH (testscript.Main puts it there): %v", err)
	}
	srvX := xmpptest.Start(t)
	dir := t.TempDir()
	person := func(name string) []string {
		t.Helper()
		if err := srvX.Register(name, "pw-"+name); err != nil {
			t.Fatal(err)
		}
		return xmppPerson(t, dir, name, srvX)
	}
	alice, bob := person("alice"), person("bob")
	git := func(env []string, d string, args ...string) string {
		t.Helper()
		return runCmd(t, env, d, "git", args...)
	}

	srv := filepath.Join(dir, "srv")
	git(alice, dir, "init", "-q", "-b", "main", srv)
	rng := rand.NewChaCha8([32]byte{11})
	buf := make([]byte, 10<<20)
	for i := range 10 {
		_, _ = rng.Read(buf)
		if err := os.WriteFile(filepath.Join(srv, fmt.Sprintf("f%02d.bin", i)), buf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git(alice, srv, "-c", "core.compression=0", "add", ".")
	git(alice, srv, "commit", "-q", "-m", "100 MB")
	// Blobs above core.bigFileThreshold are not searched for deltas (in
	// vain, random data): 48 s here for 10 blobs of 10 MB otherwise.
	git(alice, srv, "config", "core.bigFileThreshold", "1m")
	git(alice, srv, "config", "pack.compression", "0")
	git(alice, srv, "repack", "-adq")

	bobURL := firstLineTB(t, runCmd(t, bob, dir, grd, "-C", dir, "address"), "xmpp::")
	git(alice, srv, "remote", "add", "bob", bobURL)
	git(alice, srv, "config", "remote.bob.daemonWatch", "false")
	aliceURL := firstLineTB(t, runCmd(t, alice, srv, grd, "address"), "xmpp::")
	startServingDaemon(t, grd, srv, alice, filepath.Join(dir, "daemon.stderr"))

	to := filepath.Join(dir, "clone")
	start := time.Now()
	git(bob, dir, "clone", "-q", "--no-checkout", aliceURL, to)
	took := time.Since(start)

	var packBytes int64
	packs, _ := filepath.Glob(filepath.Join(to, ".git", "objects", "pack", "*.pack"))
	for _, p := range packs {
		if fi, err := os.Stat(p); err == nil {
			packBytes += fi.Size()
		}
	}
	if packBytes < 100<<20 {
		t.Errorf("the clone's packs hold %d bytes, want the whole ~105 MB", packBytes)
	}
	git(bob, to, "fsck", "--no-progress", "--no-dangling")
	for _, rev := range []string{"HEAD", "HEAD^{tree}"} {
		if got, want := strings.TrimSpace(git(bob, to, "rev-parse", rev)), strings.TrimSpace(git(alice, srv, "rev-parse", rev)); got != want {
			t.Errorf("clone's %s = %s, served %s", rev, got, want)
		}
	}
	t.Logf("xmpp:: clone of %.1f MB (SOCKS5 bytestream through Prosody's proxy65): %.1f s, %.1f MB/s",
		float64(packBytes)/1e6, took.Seconds(), float64(packBytes)/1e6/took.Seconds())
}

// firstLineTB returns the first line of out starting with prefix.
func firstLineTB(tb testing.TB, out, prefix string) string {
	tb.Helper()
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix) {
			return strings.TrimSpace(l)
		}
	}
	tb.Fatalf("no %s line in %q", prefix, out)
	return ""
}
