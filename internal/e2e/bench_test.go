package e2e

import (
	"bufio"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/internal/cmdline"
)

// BenchmarkLocalPushToChanged pushes b.N commits, one at a time, to a
// local bare remote watched by a foreground daemon, and reports the time
// from `git push` returning to the daemon's CHANGED line and to its
// "STATUS fetched" line (median and p99). Target: CHANGED median < 10 ms.
// Run it with scripts/bench; it is a measurement, not a pass/fail test.
func BenchmarkLocalPushToChanged(b *testing.B) {
	dir := b.TempDir()
	gitEnv := isolatedEnv(dir)
	run := func(d string, args ...string) { runCmd(b, gitEnv, d, "git", args...) }
	up, src, clone := filepath.Join(dir, "up.git"), filepath.Join(dir, "src"), filepath.Join(dir, "clone")
	run(dir, "init", "-q", "--bare", up)
	run(dir, "init", "-q", "-b", "main", src)
	run(dir, "init", "-q", clone)
	run(clone, "remote", "add", "origin", up)
	script := fmt.Sprintf("for i in $(seq 1 %d); do git commit -q --allow-empty -m $i; git tag c$i; done", b.N)
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir, cmd.Env = src, gitEnv
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("%v\n%s", err, out)
	}

	for _, kv := range gitEnv {
		k, v, _ := strings.Cut(kv, "=")
		b.Setenv(k, v)
	}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	exited := make(chan int, 1)
	go func() {
		exited <- cmdline.Daemon([]string{"git-remote-daemon", "--foreground", "-C", clone}, inR, outW, io.Discard)
		outW.Close()
	}()
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(outR)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	await := func(prefix string) time.Time {
		timeout := time.After(20 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					b.Fatalf("daemon exited waiting for %q", prefix)
				}
				if strings.HasPrefix(l, prefix) {
					return time.Now()
				}
			case <-timeout:
				b.Fatalf("no %q within 20s", prefix)
			}
		}
	}
	await("CONNECTED origin")

	changed := make([]time.Duration, 0, b.N)
	fetched := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 1; i <= b.N; i++ {
		push := exec.Command("git", "push", "-q", up, fmt.Sprintf("c%d^{commit}:refs/heads/main", i))
		push.Dir, push.Env = src, gitEnv
		if out, err := push.CombinedOutput(); err != nil {
			b.Fatalf("push: %v\n%s", err, out)
		}
		pushed := time.Now()
		changed = append(changed, await("CHANGED origin").Sub(pushed))
		fetched = append(fetched, await("STATUS origin fetched").Sub(pushed))
	}
	b.StopTimer()
	inW.Close()
	<-exited
	reportLatency(b, "changed", changed)
	reportLatency(b, "fetched", fetched)
}
