package e2e

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/internal/sshtest"
)

// BenchmarkCloneAndPush compares git's bulk transfer over three
// transports, all serving one repository (srv) on this machine:
//
//	file   git clone file:///abs/srv
//	ssh    ssh://…@127.0.0.1:PORT/abs/srv, a loopback sshd (internal/sshtest)
//	th     th::… of a `git-remote-daemon --foreground` serving srv on
//	       127.0.0.1 (remotedaemon.thListen), the client a second identity
//	       (its own HOME) named in one of srv's th:: remotes, allowed to
//	       push (daemonAllowPush)
//
// srv is built once per run: by default (TH_CORPUS=go) a real
// repository, a copy of the installed Go toolchain's source tree
// (GOROOT/src) in one commit; with TH_CORPUS=random, deterministically
// (a seeded PRNG) ~300 files of random (incompressible) bytes plus a few
// commits rewriting some of them, 49.7 MB packed. Each of the b.N iterations times, for
// each transport in turn (rotating which goes first):
//
//	clone  `git clone --no-checkout` into a fresh directory (the transfer
//	       and index-pack, not the 50 MB checkout, which is the same for all)
//	push   `git push` of a new branch carrying ~20 MB of new random blobs
//	       (packed in the pushing repository, so git reuses them rather
//	       than spending ~2 s compressing loose objects for every
//	       transport); the branch and the pack it brought are deleted
//	       afterwards
//
// and, to tell fixed per-connection costs from throughput, a `git
// ls-remote`. It reports seconds per clone, push and ls-remote
// (s-clone-th, s-push-ssh, s-lsremote-file, …),
// MB/s of pack data (MBps-clone-th, …), CPU seconds per clone and push
// (cpu-s-clone-th, …: user plus system time of git with every child it
// waited for, helper and ssh client included, plus that of the serving
// process with the children it ran: sshd's per-connection process and
// git-upload-pack, or the daemon and its git), the throughput ratios
// x-th/ssh-clone and x-th/ssh-push (target: >= 0.8), the CPU ratios
// x-th/ssh-cpu-clone and x-th/ssh-cpu-push (th::'s CPU time over
// ssh://'s: lower is better, target: <= 1.2), x-file/ssh-clone and
// x-file/ssh-push. Run it with scripts/bench.
func BenchmarkCloneAndPush(b *testing.B) {
	grd, err := exec.LookPath("git-remote-daemon")
	if err != nil {
		b.Fatalf("git-remote-daemon not on PATH (testscript.Main puts it there): %v", err)
	}
	if _, err := exec.LookPath("git-remote-th"); err != nil {
		b.Fatalf("git-remote-th not on PATH (testscript.Main puts it there): %v", err)
	}
	sshSrv := sshtest.Start(b)
	dir := b.TempDir()
	extra := []string{"TMPDIR=" + os.TempDir()}
	if v := os.Getenv("GIT_REMOTE_DAEMON_DEBUG"); v != "" {
		extra = append(extra, "GIT_REMOTE_DAEMON_DEBUG="+v)
	}
	person := func(name string) []string {
		home := filepath.Join(dir, name)
		if err := os.MkdirAll(home, 0o700); err != nil {
			b.Fatal(err)
		}
		return isolatedEnv(home, extra...)
	}
	alice := person("alice")                                           // srv's owner: its daemon
	bob := append(person("bob"), "GIT_SSH_COMMAND="+sshSrv.SSHCommand) // every client
	run := func(env []string, d string, name string, args ...string) string {
		b.Helper()
		return runCmd(b, env, d, name, args...)
	}
	git := func(env []string, d string, args ...string) string { b.Helper(); return run(env, d, "git", args...) }

	// srv: the served repository, packed into one pack.
	srv := filepath.Join(dir, "srv")
	git(alice, dir, "init", "-q", "-b", "main", srv)
	rng := rand.New(rand.NewPCG(1, 2))
	writeRandom := func(path string, size int) {
		buf := make([]byte, size)
		for i := range buf {
			buf[i] = byte(rng.Uint32())
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(path, buf, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	switch corpus := os.Getenv("TH_CORPUS"); corpus {
	case "", "go":
		// A real repository: the Go toolchain's own source tree
		// (GOROOT/src, ~11,000 files, ~150 MB), in one commit.
		goSrc := filepath.Join(runtime.GOROOT(), "src")
		if err := os.CopyFS(filepath.Join(srv, "src"), os.DirFS(goSrc)); err != nil {
			b.Fatalf("copying %s: %v", goSrc, err)
		}
		git(alice, srv, "add", "-f", ".")
		git(alice, srv, "commit", "-q", "-m", "Go's source tree")
	case "random":
		const files = 300
		for i := range files {
			writeRandom(filepath.Join(srv, fmt.Sprintf("d%02d/f%03d.bin", i%20, i)), 40<<10+rng.IntN(200<<10))
		}
		git(alice, srv, "add", ".")
		git(alice, srv, "commit", "-q", "-m", "initial")
		for c := 1; c <= 4; c++ { // history: rewrite 15 files a commit
			for range 15 {
				i := rng.IntN(files)
				writeRandom(filepath.Join(srv, fmt.Sprintf("d%02d/f%03d.bin", i%20, i)), 40<<10+rng.IntN(200<<10))
			}
			git(alice, srv, "commit", "-q", "-am", fmt.Sprintf("change %d", c))
		}
	default:
		b.Fatalf("TH_CORPUS=%q: want go (the default) or random", corpus)
	}
	git(alice, srv, "repack", "-adq")
	git(alice, srv, "config", "transfer.unpackLimit", "1") // pushes stay packs, deleted between iterations

	// pusher: srv's history plus one commit of ~20 MB of new blobs.
	pusher := filepath.Join(dir, "pusher")
	git(bob, dir, "clone", "-q", srv, pusher)
	for i := range 80 {
		writeRandom(filepath.Join(pusher, "new", fmt.Sprintf("n%02d.bin", i)), 256<<10)
	}
	git(bob, pusher, "add", ".")
	git(bob, pusher, "commit", "-q", "-m", "new")
	// Packed, the push reuses the compressed objects: loose, git's own
	// pack-objects (~2 s of zlib here) would dominate every transport.
	git(bob, pusher, "repack", "-adq")

	// The th:: side: Bob's identity and URL; srv names him and serves on
	// a free loopback UDP port.
	bobURL := firstLine(b, run(bob, dir, grd, "-C", dir, "address"), "th::")
	git(alice, srv, "remote", "add", "bob", bobURL)
	git(alice, srv, "config", "remote.bob.daemonWatch", "false")
	git(alice, srv, "config", "remote.bob.daemonAllowPush", "true") // Bob's pushes are timed too
	git(alice, srv, "config", "remotedaemon.thListen", "127.0.0.1:"+freeUDPPort(b))
	thURL := firstLine(b, run(alice, srv, grd, "address"), "th::")
	daemonPid := startServingDaemon(b, grd, srv, alice, filepath.Join(dir, "daemon.stderr"))
	// Wait until it answers (and warm the node's link code paths).
	git(bob, dir, "ls-remote", thURL)

	type transport struct {
		name, url string
		server    int // the serving process (0: none, file:// runs all under git)
	}
	transports := []transport{
		{"file", "file://" + srv, 0},
		{"ssh", sshSrv.URL(srv), sshSrv.Pid()},
		{"th", thURL, daemonPid},
	}
	// timed runs git with args for t and returns its wall time and the
	// CPU time of both sides: git with its children (client), and the
	// serving process with the children it ran for the request (server).
	timed := func(t transport, d string, args ...string) (time.Duration, cpuSplit) {
		b.Helper()
		var srv0 time.Duration
		if t.server != 0 {
			srv0 = settledCPU(b, t.server)
		}
		wall, cpu := cpuRun(b, bob, d, "git", args...)
		c := cpuSplit{client: cpu}
		if t.server != 0 {
			c.server = settledCPU(b, t.server) - srv0
		}
		return wall, c
	}
	packDir := filepath.Join(srv, ".git", "objects", "pack")
	packs := func() []string {
		ents, err := os.ReadDir(packDir)
		if err != nil {
			b.Fatal(err)
		}
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		return names
	}
	packBytes := func(d string, except []string) int64 {
		ents, _ := os.ReadDir(d)
		var n int64
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), ".pack") && !slices.Contains(except, e.Name()) {
				if fi, err := e.Info(); err == nil {
					n += fi.Size()
				}
			}
		}
		return n
	}
	before := packs()
	var cloneBytes, pushBytes int64
	clone := func(t transport, i int) (time.Duration, cpuSplit) {
		to := filepath.Join(dir, fmt.Sprintf("clone-%s-%d", t.name, i))
		d, cpu := timed(t, dir, "clone", "-q", "--no-checkout", t.url, to)
		if cloneBytes == 0 {
			cloneBytes = packBytes(filepath.Join(to, ".git", "objects", "pack"), nil)
		}
		if err := os.RemoveAll(to); err != nil {
			b.Fatal(err)
		}
		return d, cpu
	}
	push := func(t transport) (time.Duration, cpuSplit) {
		d, cpu := timed(t, pusher, "push", "-q", t.url, "HEAD:refs/heads/bench-push")
		if pushBytes == 0 {
			pushBytes = packBytes(packDir, before)
		}
		// Undo it: the branch, and the pack it brought.
		git(alice, srv, "update-ref", "-d", "refs/heads/bench-push")
		for _, p := range packs() {
			if !slices.Contains(before, p) {
				if err := os.Remove(filepath.Join(packDir, p)); err != nil {
					b.Fatal(err)
				}
			}
		}
		return d, cpu
	}

	lsRemote := func(t transport) time.Duration {
		start := time.Now()
		git(bob, dir, "ls-remote", t.url)
		return time.Since(start)
	}
	cloneT := make([][]time.Duration, len(transports))
	pushT := make([][]time.Duration, len(transports))
	lsT := make([][]time.Duration, len(transports))
	cloneCPU := make([]cpuSplit, len(transports)) // sums
	pushCPU := make([]cpuSplit, len(transports))
	add := func(s *cpuSplit, c cpuSplit) { s.client += c.client; s.server += c.server }
	b.ResetTimer()
	for i := range b.N {
		for k := range transports {
			j := (i + k) % len(transports)
			d, c := clone(transports[j], i)
			cloneT[j] = append(cloneT[j], d)
			add(&cloneCPU[j], c)
			d, c = push(transports[j])
			pushT[j] = append(pushT[j], d)
			add(&pushCPU[j], c)
			lsT[j] = append(lsT[j], lsRemote(transports[j]))
		}
	}
	b.StopTimer()
	for j := range transports {
		cloneCPU[j].client /= time.Duration(b.N)
		cloneCPU[j].server /= time.Duration(b.N)
		pushCPU[j].client /= time.Duration(b.N)
		pushCPU[j].server /= time.Duration(b.N)
	}

	mean := func(ds []time.Duration) float64 {
		var s time.Duration
		for _, d := range ds {
			s += d
		}
		return s.Seconds() / float64(len(ds))
	}
	const mb = 1e6
	var cloneS, pushS, lsS [3]float64
	for j, t := range transports {
		cloneS[j], pushS[j], lsS[j] = mean(cloneT[j]), mean(pushT[j]), mean(lsT[j])
		b.ReportMetric(lsS[j], "s-lsremote-"+t.name)
		b.ReportMetric(cloneS[j], "s-clone-"+t.name)
		b.ReportMetric(pushS[j], "s-push-"+t.name)
		b.ReportMetric(float64(cloneBytes)/mb/cloneS[j], "MBps-clone-"+t.name)
		b.ReportMetric(float64(pushBytes)/mb/pushS[j], "MBps-push-"+t.name)
		b.ReportMetric(cloneCPU[j].total().Seconds(), "cpu-s-clone-"+t.name)
		b.ReportMetric(pushCPU[j].total().Seconds(), "cpu-s-push-"+t.name)
	}
	const file, ssh, th = 0, 1, 2
	// Throughput ratios: the same bytes, so the inverse ratio of times.
	b.ReportMetric(cloneS[ssh]/cloneS[th], "x-th/ssh-clone")
	b.ReportMetric(pushS[ssh]/pushS[th], "x-th/ssh-push")
	// CPU ratios: th's CPU time (both sides) over ssh's; target <= 1.2.
	b.ReportMetric(cloneCPU[th].total().Seconds()/cloneCPU[ssh].total().Seconds(), "x-th/ssh-cpu-clone")
	b.ReportMetric(pushCPU[th].total().Seconds()/pushCPU[ssh].total().Seconds(), "x-th/ssh-cpu-push")
	b.ReportMetric(cloneS[ssh]/cloneS[file], "x-file/ssh-clone")
	b.ReportMetric(pushS[ssh]/pushS[file], "x-file/ssh-push")
	if b.N == 1 {
		return // the framework's probe run: go test keeps only 10 lines of a benchmark's log
	}
	var t strings.Builder
	fmt.Fprintf(&t, "clone %.1f MB (pack), push %.1f MB (pack), mean of %d:\n", float64(cloneBytes)/mb, float64(pushBytes)/mb, b.N)
	fmt.Fprintf(&t, "  %-5s %9s %9s %9s %9s %11s %15s %15s\n", "", "clone s", "MB/s", "push s", "MB/s", "ls-remote s",
		"clone cpu c+s", "push cpu c+s")
	for j, tr := range transports {
		fmt.Fprintf(&t, "  %-5s %9.3f %9.1f %9.3f %9.1f %11.3f %15s %15s\n", tr.name, cloneS[j], float64(cloneBytes)/mb/cloneS[j],
			pushS[j], float64(pushBytes)/mb/pushS[j], lsS[j], cloneCPU[j], pushCPU[j])
	}
	fmt.Fprintf(&t, "  th/ssh throughput: clone %.2f, push %.2f (target >= 0.8)\n", cloneS[ssh]/cloneS[th], pushS[ssh]/pushS[th])
	fmt.Fprintf(&t, "  th/ssh CPU time: clone %.2f, push %.2f (target <= 1.2)\n",
		cloneCPU[th].total().Seconds()/cloneCPU[ssh].total().Seconds(), pushCPU[th].total().Seconds()/pushCPU[ssh].total().Seconds())
	fmt.Fprintf(&t, "  file/ssh throughput: clone %.2f, push %.2f", cloneS[ssh]/cloneS[file], pushS[ssh]/pushS[file])
	b.Log("\n" + t.String())
}

// freeUDPPort returns a UDP port on 127.0.0.1 free a moment ago.
func freeUDPPort(b *testing.B) string {
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	return fmt.Sprint(c.LocalAddr().(*net.UDPAddr).Port)
}

// startServingDaemon runs `git-remote-daemon --foreground` in repo with
// env, its stderr to errLog; at cleanup its stdin is closed and, should it
// not exit within 10 s, it is killed by pid.
func startServingDaemon(b testing.TB, grd, repo string, env []string, errLog string) (pid int) {
	cmd := exec.Command(grd, "--foreground")
	cmd.Dir, cmd.Env = repo, env
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	errFile, err := os.Create(errLog)
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = errFile
	if err := cmd.Start(); err != nil {
		b.Fatalf("git-remote-daemon: %v", err)
	}
	errFile.Close()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	b.Cleanup(func() {
		stdin.Close()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			b.Logf("git-remote-daemon (pid %d) ignored stdin EOF for 10s: killing it", cmd.Process.Pid)
			_ = cmd.Process.Kill()
			<-exited
		}
		if b.Failed() || os.Getenv("GIT_REMOTE_DAEMON_DEBUG") != "" {
			if e, _ := os.ReadFile(errLog); len(e) > 0 {
				b.Logf("git-remote-daemon stderr (tail):\n%s", tail(string(e), 40))
			}
		}
	})
	return cmd.Process.Pid
}
