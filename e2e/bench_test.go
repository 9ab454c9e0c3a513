package e2e

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/cmdline"
)

// BenchmarkLocalPushToChanged pushes b.N commits, one at a time, to a
// local bare remote watched by a foreground daemon, and reports the time
// from `git push` returning to the daemon's CHANGED line and to its
// "STATUS fetched" line (median and p99). Target: CHANGED median < 10 ms.
// Run it with scripts/bench; it is a measurement, not a pass/fail test.
func BenchmarkLocalPushToChanged(b *testing.B) {
	dir := b.TempDir()
	gitEnv := []string{"HOME=" + dir, "GIT_CONFIG_NOSYSTEM=1", "GIT_AUTHOR_NAME=b", "GIT_AUTHOR_EMAIL=b@example.org",
		"GIT_COMMITTER_NAME=b", "GIT_COMMITTER_EMAIL=b@example.org", "PATH=" + os.Getenv("PATH")}
	run := func(d string, args ...string) {
		cmd := exec.Command("git", args...)
		cmd.Dir, cmd.Env = d, gitEnv
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
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
	report(b, "changed", changed)
	report(b, "fetched", fetched)
}

// report adds the median and p99 of ds, in milliseconds, to the
// benchmark's output.
func report(b *testing.B, what string, ds []time.Duration) {
	if len(ds) == 0 {
		return
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(ds[len(ds)/2]), "ms-median-"+what)
	b.ReportMetric(ms(ds[min(len(ds)-1, len(ds)*99/100)]), "ms-p99-"+what)
}
