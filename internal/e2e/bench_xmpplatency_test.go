package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/internal/xmpptest"
)

// BenchmarkXMPPPushToFetched measures the xmpp:: remote as
// BenchmarkTHPushToFetched measures th::: Alice's repository is served by
// her daemon, whose telehash node logs in to a throwaway Prosody on
// loopback (STARTTLS) as alice@localhost; Bob's clone has it as origin
// (xmpp::alice@localhost?…) and his foreground daemon (own HOME, own
// account bob@localhost) watches it, every packet going through Prosody.
// b.N commits are pushed to Alice's repository, one at a time and
// locally; from `git push` returning it measures Bob's CHANGED origin
// line and his "STATUS origin fetched" with the commit in
// refs/remotes/origin/main, and reports their median and p99
// (ms-median-changed, ms-median-fetched, ...), the units the summary
// table (internal/benchtable) reads for its xmpp rows.
func BenchmarkXMPPPushToFetched(b *testing.B) {
	grd, err := exec.LookPath("git-remote-daemon")
	if err != nil {
		b.Fatalf("git-remote-daemon not on PATH (testscript.Main puts it there): %v", err)
	}
	if _, err := exec.LookPath("git-remote-xmpp"); err != nil {
		b.Fatalf("git-remote-xmpp not on PATH (testscript.Main puts it there): %v", err)
	}
	srvX := xmpptest.Start(b)
	dir := b.TempDir()
	person := func(name string) []string {
		b.Helper()
		if err := srvX.Register(name, "pw-"+name); err != nil {
			b.Fatal(err)
		}
		return xmppPerson(b, dir, name, srvX)
	}
	alice, bob := person("alice"), person("bob")
	git := func(env []string, d string, args ...string) string {
		b.Helper()
		return runCmd(b, env, d, "git", args...)
	}

	// src holds commits c0..cN; srv (Alice's) starts with c0.
	src, srv := filepath.Join(dir, "src"), filepath.Join(dir, "srv")
	git(alice, dir, "init", "-q", "-b", "main", src)
	runCmd(b, alice, src, "bash", "-c", fmt.Sprintf("for i in $(seq 0 %d); do git commit -q --allow-empty -m $i; done", b.N))
	shas := strings.Fields(git(alice, src, "rev-list", "--reverse", "main"))
	git(alice, dir, "init", "-q", "--bare", srv)
	git(alice, src, "push", "-q", srv, shas[0]+":refs/heads/main")

	bobURL := firstLine(b, runCmd(b, bob, dir, grd, "-C", dir, "address"), "xmpp::")
	git(alice, srv, "remote", "add", "bob", bobURL)
	git(alice, srv, "config", "remote.bob.daemonWatch", "false")
	aliceURL := firstLine(b, runCmd(b, alice, srv, grd, "address"), "xmpp::")
	startServingDaemon(b, grd, srv, alice, filepath.Join(dir, "alice.stderr"))

	clone := filepath.Join(dir, "clone")
	git(bob, dir, "clone", "-q", aliceURL, clone)
	d := startTimed(b, grd, clone, bob, "--foreground")
	awaitLineAny(b, d.lines, "CONNECTED origin", time.Minute)
	quietLines(d.lines, time.Second, 10*time.Second)
	tracked := func() string {
		out, _ := exec.Command("git", "-C", clone, "rev-parse", "-q", "--verify", "refs/remotes/origin/main").Output()
		return strings.TrimSpace(string(out))
	}

	var changed, fetched []time.Duration
	b.ResetTimer()
	for i := 1; i <= b.N; i++ {
		git(alice, src, "push", "-q", srv, shas[i]+":refs/heads/main")
		pushed := time.Now()
		l := awaitLineAny(b, d.lines, "CHANGED origin", time.Minute)
		if !strings.Contains(l.text, shas[i]) {
			b.Fatalf("push %d: %q, want %s", i, l.text, shas[i])
		}
		changed = append(changed, l.at.Sub(pushed))
		for {
			l = awaitLineAny(b, d.lines, "STATUS origin fetched", time.Minute)
			if tracked() == shas[i] {
				break
			}
		}
		fetched = append(fetched, l.at.Sub(pushed))
	}
	b.StopTimer()
	c, f := reportLatency(b, "changed", changed), reportLatency(b, "fetched", fetched)
	b.Logf("xmpp:: remote through Prosody on loopback, %d pushes: push -> CHANGED median %.1f ms (p99 %.1f), push -> fetched median %.1f ms (p99 %.1f)",
		b.N, c[0], c[1], f[0], f[1])
}

// xmppPerson makes name's HOME under dir (account name@localhost on srv,
// its password in git's credential store) and returns its environment.
func xmppPerson(tb testing.TB, dir, name string, srv *xmpptest.Server) []string {
	tb.Helper()
	home := filepath.Join(dir, name)
	if err := os.MkdirAll(home, 0o700); err != nil {
		tb.Fatal(err)
	}
	cfg := fmt.Sprintf("[init]\n\tdefaultBranch = main\n[remotedaemon]\n\txmppJID = %s@localhost\n\txmppServer = %s\n\txmppCA = %s\n[credential]\n\thelper = store\n",
		name, srv.Addr(), srv.CAFile)
	if err := os.WriteFile(filepath.Join(home, ".gitconfig"), []byte(cfg), 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ".git-credentials"), []byte("xmpp://"+name+":pw-"+name+"@localhost\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	return isolatedEnv(home, "TMPDIR="+os.TempDir())
}
