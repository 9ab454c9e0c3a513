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

// BenchmarkXMPPClone compares git's bulk transfer over xmpp:: (telehash
// with a throwaway Prosody on loopback as the only path between the
// nodes, STARTTLS) and over ssh:// (a loopback sshd) on one repository
// (~10 MB of random blobs, packed), for each bulk path of xmpp:: as a
// sub-benchmark:
//
//	bytestream  a SOCKS5 bytestream through Prosody's proxy65 (the default)
//	messages    packets in <message> stanzas (remotedaemon.xmppBytestreams=false)
//
// Each iteration, for each transport in turn (rotating which goes first):
//
//	clone  `git clone --no-checkout` of the repository, served by Alice's daemon
//	push   `git push` of the whole repository (Bob's clone of it) into an
//	       empty bare repository, served by Carol's daemon (which lets Bob
//	       push); the branch and the pack it brought are deleted afterwards
//
// It reports seconds and MB/s of pack data per clone and per push
// (s-clone-xmpp, MBps-clone-ssh, s-push-xmpp, MBps-push-ssh, ...) and the
// throughput ratios x-xmpp/ssh-clone and x-xmpp/ssh-push (targets:
// bytestream >= 0.5; messages: 10 MB/s). The summary table of
// scripts/bench (internal/benchtable) shows them.
func BenchmarkXMPPClone(b *testing.B) {
	for _, p := range []string{"git-remote-daemon", "git-remote-xmpp"} {
		if _, err := exec.LookPath(p); err != nil {
			b.Fatalf("%s not on PATH (testscript.Main puts it there): %v", p, err)
		}
	}
	grd, _ := exec.LookPath("git-remote-daemon")
	srvX := xmpptest.Start(b)
	sshSrv := sshtest.Start(b)
	dir := b.TempDir()
	plain := isolatedEnv(dir, "TMPDIR="+os.TempDir(), "GIT_SSH_COMMAND="+sshSrv.SSHCommand)
	git := func(env []string, d string, args ...string) string {
		b.Helper()
		return runCmd(b, env, d, "git", args...)
	}

	// srv: the repository (for ssh://, and the source of each mode's
	// served copy); pusher: Bob's clone of it, pushed whole.
	srv := filepath.Join(dir, "srv")
	git(plain, dir, "init", "-q", "-b", "main", srv)
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
	git(plain, srv, "add", ".")
	git(plain, srv, "commit", "-q", "-m", "initial")
	git(plain, srv, "repack", "-adq")
	pusher := filepath.Join(dir, "pusher")
	git(plain, dir, "clone", "-q", "--no-checkout", srv, pusher)
	// The push target of ssh://: empty, emptied again after each push.
	dstSSH := filepath.Join(dir, "dst-ssh")
	git(plain, dir, "init", "-q", "--bare", dstSSH)
	git(plain, dstSSH, "config", "transfer.unpackLimit", "1") // pushes stay packs, deleted between iterations

	// setup makes one mode's nodes: its own accounts, Alice's daemon
	// serving a copy of srv, Carol's serving an empty repository, and
	// Bob's environment (his git-remote-xmpp logs in for each command).
	type modeSetup struct {
		bob               []string
		cloneURL, pushURL string
		dst               string
	}
	setup := func(mode string, bytestreams bool) modeSetup {
		person := func(name string) []string {
			b.Helper()
			account := mode + name
			if err := srvX.Register(account, "pw-"+account); err != nil {
				b.Fatal(err)
			}
			env := xmppPerson(b, dir, account, srvX)
			git(env, dir, "config", "--global", "remotedaemon.xmppBytestreams", fmt.Sprint(bytestreams))
			return env
		}
		alice, bob, carol := person("alice"), append(person("bob"), "GIT_SSH_COMMAND="+sshSrv.SSHCommand), person("carol")
		bobURL := firstLine(b, runCmd(b, bob, dir, grd, "-C", dir, "address"), "xmpp::")
		serve := func(env []string, repo string, push bool) string {
			git(env, repo, "remote", "add", "bob", bobURL)
			git(env, repo, "config", "remote.bob.daemonWatch", "false")
			git(env, repo, "config", "remote.bob.daemonAllowPush", fmt.Sprint(push))
			url := firstLine(b, runCmd(b, env, repo, grd, "address"), "xmpp::")
			startServingDaemon(b, grd, repo, env, repo+".stderr")
			return url
		}
		src := filepath.Join(dir, mode+"-srv")
		git(alice, dir, "clone", "-q", "--bare", srv, src)
		git(alice, src, "remote", "remove", "origin")
		dst := filepath.Join(dir, mode+"-dst")
		git(carol, dir, "init", "-q", "--bare", dst)
		git(carol, dst, "config", "transfer.unpackLimit", "1")
		m := modeSetup{bob: bob, cloneURL: serve(alice, src, false), pushURL: serve(carol, dst, true), dst: dst}
		git(bob, dir, "ls-remote", m.cloneURL) // they answer
		git(bob, dir, "ls-remote", m.pushURL)
		return m
	}
	modes := []struct {
		name        string
		bytestreams bool
		m           modeSetup
	}{{name: "bytestream", bytestreams: true}, {name: "messages"}}
	for i := range modes {
		modes[i].m = setup(modes[i].name, modes[i].bytestreams)
	}
	b.ResetTimer()
	for _, mode := range modes {
		b.Run(mode.name, func(b *testing.B) {
			benchXMPPTransfer(b, mode.m.bob, dir, pusher, []xmppBenchTarget{
				{"ssh", sshSrv.URL(srv), sshSrv.URL(dstSSH), dstSSH},
				{"xmpp", mode.m.cloneURL, mode.m.pushURL, mode.m.dst},
			})
		})
	}
}

// xmppBenchTarget is one transport of BenchmarkXMPPClone: where to
// clone from, where to push to, and the push target's path (to empty it).
type xmppBenchTarget struct{ name, cloneURL, pushURL, dst string }

// benchXMPPTransfer times b.N clones and pushes over each target (in
// turn, rotating which goes first) and reports seconds, MB/s and the
// ratios of targets[1] to targets[0].
func benchXMPPTransfer(b *testing.B, env []string, dir, pusher string, targets []xmppBenchTarget) {
	git := func(d string, args ...string) string {
		b.Helper()
		return runCmd(b, env, d, "git", args...)
	}
	var cloneBytes, pushBytes int64
	cloneT := make([]time.Duration, len(targets))
	pushT := make([]time.Duration, len(targets))
	for i := range b.N {
		for k := range targets {
			j := (i + k) % len(targets)
			t := targets[j]
			to := filepath.Join(dir, fmt.Sprintf("clone-%s-%d", t.name, i))
			start := time.Now()
			git(dir, "clone", "-q", "--no-checkout", t.cloneURL, to)
			cloneT[j] += time.Since(start)
			if cloneBytes == 0 {
				cloneBytes = packBytesIn(filepath.Join(to, "objects", "pack"), filepath.Join(to, ".git", "objects", "pack"))
			}
			if err := os.RemoveAll(to); err != nil {
				b.Fatal(err)
			}

			start = time.Now()
			git(pusher, "push", "-q", t.pushURL, "HEAD:refs/heads/bench-push")
			pushT[j] += time.Since(start)
			packDir := filepath.Join(t.dst, "objects", "pack")
			if pushBytes == 0 {
				pushBytes = packBytesIn(packDir)
			}
			// Empty it again: the branch and the pack the push brought.
			git(t.dst, "update-ref", "-d", "refs/heads/bench-push")
			ents, _ := os.ReadDir(packDir)
			for _, e := range ents {
				if err := os.Remove(filepath.Join(packDir, e.Name())); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	b.StopTimer()
	if cloneBytes == 0 || pushBytes == 0 {
		b.Fatalf("no pack data measured (clone %d, push %d bytes)", cloneBytes, pushBytes)
	}
	var cloneS, pushS [2]float64
	for j, t := range targets {
		cloneS[j] = cloneT[j].Seconds() / float64(b.N)
		pushS[j] = pushT[j].Seconds() / float64(b.N)
		b.ReportMetric(cloneS[j], "s-clone-"+t.name)
		b.ReportMetric(pushS[j], "s-push-"+t.name)
		b.ReportMetric(float64(cloneBytes)/1e6/cloneS[j], "MBps-clone-"+t.name)
		b.ReportMetric(float64(pushBytes)/1e6/pushS[j], "MBps-push-"+t.name)
	}
	// The same bytes both ways: the throughput ratio is that of times.
	b.ReportMetric(cloneS[0]/cloneS[1], "x-"+targets[1].name+"/"+targets[0].name+"-clone")
	b.ReportMetric(pushS[0]/pushS[1], "x-"+targets[1].name+"/"+targets[0].name+"-push")
}

// packBytesIn sums the sizes of the .pack files in dirs.
func packBytesIn(dirs ...string) int64 {
	var n int64
	for _, d := range dirs {
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			if fi, err := e.Info(); err == nil && strings.HasSuffix(e.Name(), ".pack") {
				n += fi.Size()
			}
		}
	}
	return n
}
