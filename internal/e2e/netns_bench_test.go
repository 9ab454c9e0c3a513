package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/internal/netnstest"
)

// BenchmarkNATRoam times how long a node that changed networks takes to
// hear of the next change again: Bob (behind a NAT, his daemon watching
// Alice's repository over th::) moves to another NAT, a new public
// address; at once Alice commits; the time from the move to Bob's
// CHANGED (and to his "STATUS fetched") is the sample. Bob's NAT changes
// every iteration (home, cafe, home, ...). Sub-benchmarks:
//
//	public-peer      Alice on the public network, serving on her address
//	                 (works with direct links alone)
//	both-behind-nat  Alice behind her own NAT too, both registered with a
//	                 router on the public network (remotedaemon.thRouter,
//	                 remotedaemon.thRouters): needs routing in the daemon
//
// It reports ms-median-changed, ms-p99-changed, ms-median-fetched and
// ms-p99-fetched. Run: go test -run '^$' -bench NATRoam -benchtime 5x ./internal/e2e/
func BenchmarkNATRoam(b *testing.B) {
	for _, behind := range []bool{false, true} {
		name := map[bool]string{false: "public-peer", true: "both-behind-nat"}[behind]
		b.Run(name, func(b *testing.B) {
			w := newNATWorld(b, behind, false)
			w.git(w.alice, w.aliceHome, w.srv, "commit", "-q", "--allow-empty", "-m", "one")
			bobRepo := w.cloneAlice(b, "bobclone")
			bob := w.startDaemon(b, w.bob, w.bobHome, bobRepo)
			awaitLine(b, bob.lines, "bob", "CONNECTED origin", 30*time.Second)
			quiet(bob.lines, time.Second, 10*time.Second)
			nats := []*netnstest.NAT{w.n.NAT("cafe"), w.n.NAT("bhome")}
			var changed, fetched []time.Duration
			b.ResetTimer()
			for i := range b.N {
				if err := w.bob.MoveTo(context.Background(), nats[i%2]); err != nil {
					b.Fatal(err)
				}
				moved := time.Now()
				w.git(w.alice, w.aliceHome, w.srv, "commit", "-q", "--allow-empty", "-m", fmt.Sprint(i))
				changed = append(changed, awaitLine(b, bob.lines, "bob", "CHANGED origin", 60*time.Second).at.Sub(moved))
				fetched = append(fetched, awaitLine(b, bob.lines, "bob", "STATUS origin fetched", 60*time.Second).at.Sub(moved))
			}
			b.StopTimer()
			reportLatency(b, "changed", changed)
			reportLatency(b, "fetched", fetched)
		})
	}
}

// BenchmarkRelayClone compares `git clone --no-checkout` of a 16 MB
// (incompressible) repository from Alice's daemon, Bob cloning:
//
//	public  both on the public network: a direct link, no NAT
//	direct  each behind a NAT that keeps ports: introduced by a router,
//	        then a direct (hole-punched) path
//	relay   each behind a `masquerade random` NAT: no hole punching, the
//	        router relays every packet
//
// direct and relay need routing in the daemon (remotedaemon.thRouter,
// remotedaemon.thRouters). Each reports s-clone and MBps-clone; the
// parent logs relay/direct and relay/public throughput ratios.
// Run: go test -run '^$' -bench RelayClone -benchtime 3x ./internal/e2e/
func BenchmarkRelayClone(b *testing.B) {
	mbps := map[string]float64{}
	for _, c := range []struct {
		name           string
		behind, random bool
	}{{"public", false, false}, {"direct", true, false}, {"relay", true, true}} {
		b.Run(c.name, func(b *testing.B) {
			w := newNATWorld(b, c.behind, c.random)
			rng := rand.New(rand.NewPCG(1, 2))
			buf := make([]byte, 256<<10)
			for i := range 64 {
				for k := range buf {
					buf[k] = byte(rng.Uint32())
				}
				if err := os.WriteFile(filepath.Join(w.srv, fmt.Sprintf("f%02d.bin", i)), buf, 0o644); err != nil {
					b.Fatal(err)
				}
			}
			w.git(w.alice, w.aliceHome, w.srv, "add", ".")
			w.git(w.alice, w.aliceHome, w.srv, "commit", "-q", "-m", "data")
			w.git(w.alice, w.aliceHome, w.srv, "repack", "-adq")
			w.cloneAlice(b, "warm") // links, and warms the caches
			var total time.Duration
			var bytes int64
			b.ResetTimer()
			for i := range b.N {
				start := time.Now()
				to := w.cloneAlice(b, fmt.Sprintf("clone%d", i))
				total += time.Since(start)
				b.StopTimer()
				bytes = packSize(b, filepath.Join(to, ".git", "objects", "pack"))
				if err := os.RemoveAll(to); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.StopTimer()
			s := total.Seconds() / float64(b.N)
			b.ReportMetric(s, "s-clone")
			b.ReportMetric(float64(bytes)/1e6/s, "MBps-clone")
			mbps[c.name] = float64(bytes) / 1e6 / s
		})
	}
	if mbps["relay"] > 0 && mbps["direct"] > 0 && mbps["public"] > 0 {
		b.Logf("clone throughput: public %.1f MB/s, direct through NATs %.1f MB/s, relay %.1f MB/s; relay/direct %.2f, relay/public %.2f",
			mbps["public"], mbps["direct"], mbps["relay"], mbps["relay"]/mbps["direct"], mbps["relay"]/mbps["public"])
	}
}

func packSize(b *testing.B, dir string) int64 {
	ents, err := os.ReadDir(dir)
	if err != nil {
		b.Fatal(err)
	}
	var n int64
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".pack") {
			if fi, err := e.Info(); err == nil {
				n += fi.Size()
			}
		}
	}
	return n
}

// natWorld is Alice serving srv to Bob over th:: through real NATs:
// Alice on the public network (behind false) or behind her NAT "ahome"
// with a router "rt" on the public network; Bob behind "bhome"; a spare
// NAT "cafe" for Bob to move to. random makes every NAT `masquerade
// random`.
type natWorld struct {
	b                    *testing.B
	n                    *netnstest.Net
	grd, dir             string
	alice, bob           *netnstest.Host
	aliceHome, bobHome   string
	srv, aliceURL, bobID string
}

func newNATWorld(b *testing.B, behind, random bool) *natWorld {
	grd, err := exec.LookPath("git-remote-daemon")
	if err != nil {
		b.Fatalf("git-remote-daemon not on PATH (testscript.Main puts it there): %v", err)
	}
	ctx := context.Background()
	n := netnstest.New(b)
	w := &natWorld{b: b, n: n, grd: grd, dir: b.TempDir()}
	must := func(h *netnstest.Host, err error) *netnstest.Host {
		if err != nil {
			b.Fatal(err)
		}
		return h
	}
	nat := func(name string) *netnstest.NAT {
		r, err := n.NewNAT(ctx, name, netnstest.NATOptions{Random: random})
		if err != nil {
			b.Fatal(err)
		}
		return r
	}
	w.aliceHome, w.bobHome = filepath.Join(w.dir, "alice"), filepath.Join(w.dir, "bob")
	w.bob = must(nat("bhome").Host(ctx, "bob"))
	nat("cafe")
	w.srv = filepath.Join(w.dir, "srv")
	w.git(nil, w.aliceHome, w.dir, "init", "-q", "-b", "main", w.srv)
	w.bobID = firstLine(b, w.run(nil, w.bobHome, w.dir, grd, "-C", w.dir, "address"), "th::")
	w.git(nil, w.aliceHome, w.srv, "remote", "add", "bob", w.bobID)
	w.git(nil, w.aliceHome, w.srv, "config", "remote.bob.daemonWatch", "false")
	if !behind {
		w.alice = must(n.PublicHost(ctx, "alice"))
		w.git(nil, w.aliceHome, w.srv, "config", "remotedaemon.thListen", w.alice.IP().String()+":7000")
		w.aliceURL = firstLine(b, w.run(w.alice, w.aliceHome, w.srv, grd, "address"), "th::")
	} else {
		w.alice = must(nat("ahome").Host(ctx, "alice"))
		w.aliceURL = firstLine(b, w.run(nil, w.aliceHome, w.dir, grd, "-C", w.dir, "address"), "th::")
		// The router: a repository naming Alice and Bob, served on the
		// public network; both use it.
		rt := must(n.PublicHost(ctx, "rt"))
		rtHome, rtRepo := filepath.Join(w.dir, "rt"), filepath.Join(w.dir, "rtrepo")
		w.git(nil, rtHome, w.dir, "init", "-q", rtRepo)
		w.git(nil, rtHome, rtRepo, "config", "remotedaemon.thListen", rt.IP().String()+":7000")
		w.git(nil, rtHome, rtRepo, "config", "remotedaemon.thRouter", "true")
		for name, url := range map[string]string{"alice": w.aliceURL, "bob": w.bobID} {
			w.git(nil, rtHome, rtRepo, "remote", "add", name, url)
			w.git(nil, rtHome, rtRepo, "config", "remote."+name+".daemonWatch", "false")
		}
		rtURL := firstLine(b, w.run(rt, rtHome, rtRepo, grd, "address"), "th::")
		w.startDaemon(b, rt, rtHome, rtRepo)
		for _, home := range []string{w.aliceHome, w.bobHome} {
			w.git(nil, home, w.dir, "config", "--global", "remotedaemon.thRouters", rtURL)
		}
	}
	w.startDaemon(b, w.alice, w.aliceHome, w.srv)
	return w
}

// run runs name in dir as the person whose home is home, inside h's
// network (h nil: the machine's), and returns its trimmed output.
func (w *natWorld) run(h *netnstest.Host, home, dir, name string, args ...string) string {
	w.b.Helper()
	if err := os.MkdirAll(home, 0o700); err != nil {
		w.b.Fatal(err)
	}
	env := isolatedEnv(home, "TMPDIR="+os.TempDir())
	if h == nil {
		return runCmd(w.b, env, dir, name, args...)
	}
	cmd := h.Command(context.Background(), name, args...)
	cmd.Dir, cmd.Env = dir, env
	out, err := cmd.CombinedOutput()
	if err != nil {
		w.b.Fatalf("in %s: %s %v: %v\n%s", h.Name, name, args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func (w *natWorld) git(h *netnstest.Host, home, dir string, args ...string) string {
	w.b.Helper()
	return w.run(h, home, dir, "git", args...)
}

// cloneAlice clones Alice's repository as Bob, inside his network, into
// a new directory under w.dir named name, and returns its path.
func (w *natWorld) cloneAlice(b *testing.B, name string) string {
	b.Helper()
	to := filepath.Join(w.dir, name)
	w.git(w.bob, w.bobHome, w.dir, "clone", "-q", "--no-checkout", w.aliceURL, to)
	return to
}

// nsDaemon is a foreground daemon inside a host's network.
type nsDaemon struct {
	lines <-chan timedLine
}

// startDaemon starts `git-remote-daemon --foreground` in repo inside h's
// network; at cleanup its stdin is closed, and it is killed by pid if it
// has not exited within 10 s (and at the network's Close in any case).
func (w *natWorld) startDaemon(b *testing.B, h *netnstest.Host, home, repo string) *nsDaemon {
	cmd := h.Command(context.Background(), w.grd, "--foreground")
	cmd.Dir, cmd.Env = repo, isolatedEnv(home, "TMPDIR="+os.TempDir())
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	errLog := &lockedWriter{}
	cmd.Stderr = errLog
	if err := w.n.Start(cmd); err != nil {
		b.Fatal(err)
	}
	d := &nsDaemon{lines: timedLines(stdout)}
	b.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() {
			for range d.lines { // drain until it exits
			}
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
		}
		if b.Failed() {
			b.Logf("daemon in %s (%s) stderr:\n%s", h.Name, repo, tail(errLog.String(), 30))
		}
	})
	return d
}
