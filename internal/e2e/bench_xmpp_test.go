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

	"github.com/git-remote-daemon/git-remote-daemon/internal/sshtest"
	"github.com/git-remote-daemon/git-remote-daemon/internal/xmpptest"
)

// BenchmarkXMPPClone compares `git clone --no-checkout` of one
// repository (~10 MB of random blobs, packed) over xmpp:: (telehash with
// a throwaway Prosody on loopback as the only path between the nodes,
// STARTTLS; the server's SOCKS5 proxy when bytestreams are on) and over
// ssh:// (a loopback sshd). It reports seconds and MB/s of pack data per
// clone, and the throughput ratio x-xmpp/ssh-clone.
func BenchmarkXMPPClone(b *testing.B) {
	for _, p := range []string{"git-remote-daemon", "git-remote-xmpp"} {
		if _, err := exec.LookPath(p); err != nil {
			b.Fatalf("%s not on PATH (testscript.Main puts it there): %v", p, err)
		}
	}
	grd, _ := exec.LookPath("git-remote-daemon")
	srvX := xmpptest.Start(b)
	for _, u := range []string{"alice", "bob"} {
		if err := srvX.Register(u, "pw-"+u); err != nil {
			b.Fatal(err)
		}
	}
	sshSrv := sshtest.Start(b)
	dir := b.TempDir()
	person := func(name string) []string {
		home := filepath.Join(dir, name)
		if err := os.MkdirAll(home, 0o700); err != nil {
			b.Fatal(err)
		}
		cfg := fmt.Sprintf("[init]\n\tdefaultBranch = main\n[remotedaemon]\n\txmppJID = %s@localhost\n\txmppServer = %s\n\txmppCA = %s\n[credential]\n\thelper = store\n",
			name, srvX.Addr(), srvX.CAFile)
		if err := os.WriteFile(filepath.Join(home, ".gitconfig"), []byte(cfg), 0o600); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(home, ".git-credentials"), []byte("xmpp://"+name+":pw-"+name+"@localhost\n"), 0o600); err != nil {
			b.Fatal(err)
		}
		return isolatedEnv(home, "TMPDIR="+os.TempDir())
	}
	alice := person("alice")
	bob := append(person("bob"), "GIT_SSH_COMMAND="+sshSrv.SSHCommand)
	git := func(env []string, d string, args ...string) string {
		b.Helper()
		return runCmd(b, env, d, "git", args...)
	}

	srv := filepath.Join(dir, "srv")
	git(alice, dir, "init", "-q", "-b", "main", srv)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 60 {
		buf := make([]byte, 100<<10+rng.IntN(150<<10))
		for j := range buf {
			buf[j] = byte(rng.Uint32())
		}
		if err := os.WriteFile(filepath.Join(srv, fmt.Sprintf("f%03d.bin", i)), buf, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	git(alice, srv, "add", ".")
	git(alice, srv, "commit", "-q", "-m", "initial")
	git(alice, srv, "repack", "-adq")

	bobURL := firstLine(b, runCmd(b, bob, dir, grd, "-C", dir, "address"), "xmpp::")
	git(alice, srv, "remote", "add", "bob", bobURL)
	git(alice, srv, "config", "remote.bob.daemonWatch", "false")
	xmppURL := firstLine(b, runCmd(b, alice, srv, grd, "address"), "xmpp::")
	startServingDaemon(b, grd, srv, alice, filepath.Join(dir, "daemon.stderr"))
	git(bob, dir, "ls-remote", xmppURL) // it answers

	urls := []struct{ name, url string }{{"ssh", sshSrv.URL(srv)}, {"xmpp", xmppURL}}
	var packBytes int64
	times := make([][]time.Duration, len(urls))
	b.ResetTimer()
	for i := range b.N {
		for k := range urls {
			j := (i + k) % len(urls)
			to := filepath.Join(dir, fmt.Sprintf("clone-%s-%d", urls[j].name, i))
			start := time.Now()
			git(bob, dir, "clone", "-q", "--no-checkout", urls[j].url, to)
			times[j] = append(times[j], time.Since(start))
			if packBytes == 0 {
				ents, _ := os.ReadDir(filepath.Join(to, ".git", "objects", "pack"))
				for _, e := range ents {
					if fi, err := e.Info(); err == nil && strings.HasSuffix(e.Name(), ".pack") {
						packBytes += fi.Size()
					}
				}
			}
			if err := os.RemoveAll(to); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	var secs [2]float64
	for j, u := range urls {
		var s time.Duration
		for _, d := range times[j] {
			s += d
		}
		secs[j] = s.Seconds() / float64(len(times[j]))
		b.ReportMetric(secs[j], "s-clone-"+u.name)
		b.ReportMetric(float64(packBytes)/1e6/secs[j], "MBps-clone-"+u.name)
	}
	b.ReportMetric(secs[0]/secs[1], "x-xmpp/ssh-clone")
}

// firstLine returns the first line of out starting with prefix.
