package e2e

import (
	"bufio"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestDiskFullRecovery: the repository's disk fills up, a fetch fails;
// `status` shows why although the daemon cannot write its status file;
// once space is back the daemon fetches by itself (its retry backoff),
// and at once on `git-remote-daemon resume`, without a restart. The
// repository lives on a small tmpfs the test mounts, as root.
func TestDiskFullRecovery(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	mnt := filepath.Join(home, "mnt")
	mountTmpfs(t, mnt, "2m")
	env := isolatedEnv(home)
	git := func(dir string, args ...string) string {
		t.Helper()
		return runCmd(t, env, dir, "git", args...)
	}
	src := filepath.Join(home, "src")
	git(home, "init", "-q", "--bare", "-b", "main", "up.git")
	git(home, "init", "-q", "-b", "main", src)
	git(src, "commit", "-q", "--allow-empty", "-m", "one")
	git(src, "push", "-q", "../up.git", "main")
	repo := filepath.Join(mnt, "repo")
	git(home, "clone", "-q", "up.git", repo)

	bin := filepath.Join(home, "bin")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(self, filepath.Join(bin, "git-remote-daemon")); err != nil {
		t.Fatal(err)
	}
	env = append(env, "PATH="+bin+string(filepath.ListSeparator)+os.Getenv("PATH"))
	d := startForeground(t, env, repo)
	d.await(t, "CONNECTED origin")

	// A commit too big for what is left, pushed to the remote.
	commitBlob := func(name string) string {
		blob := make([]byte, 256<<10)
		_, _ = rand.Read(blob)
		if err := os.WriteFile(filepath.Join(src, name), blob, 0o644); err != nil {
			t.Fatal(err)
		}
		git(src, "add", name)
		git(src, "commit", "-q", "-m", name)
		git(src, "push", "-q", "../up.git", "main")
		return git(src, "rev-parse", "HEAD")
	}
	fill := filepath.Join(mnt, "fill")
	status := func() string {
		t.Helper()
		return runCmd(t, env, repo, "git-remote-daemon", "status")
	}
	tracking := func() string { return git(repo, "rev-parse", "refs/remotes/origin/main") }

	// By itself, after its backoff.
	fillUp(t, fill)
	two := commitBlob("two")
	d.await(t, "ERROR origin fetch failed: .*")
	if out := status(); !strings.Contains(out, "fetch failed") {
		t.Fatalf("status does not show the failed fetch:\n%s", out)
	}
	if err := os.Remove(fill); err != nil {
		t.Fatal(err)
	}
	d.await(t, "STATUS origin fetched")
	if got := tracking(); got != two {
		t.Fatalf("origin/main is %s, want %s", got, two)
	}

	// At once on resume.
	fillUp(t, fill)
	three := commitBlob("three")
	d.awaitN(t, 2, "ERROR origin fetch failed: .*")
	if err := os.Remove(fill); err != nil {
		t.Fatal(err)
	}
	runCmd(t, env, repo, "git-remote-daemon", "resume")
	d.awaitN(t, 2, "STATUS origin fetched")
	if got := tracking(); got != three {
		t.Fatalf("origin/main is %s, want %s", got, three)
	}
	d.stop(t)
	if n := d.count("ERROR .*"); n != 2 {
		t.Fatalf("%d ERROR lines, want 2:\n%s", n, d.output())
	}
}

// mountTmpfs mounts a tmpfs of size at dir until the test ends. Where it
// cannot (not root), the test is skipped, unless GRD_REQUIRE_PEERS=1
// says every test must run.
func mountTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput()
	if err != nil {
		msg := "cannot mount a tmpfs (the test needs root): " + err.Error() + ": " + strings.TrimSpace(string(out))
		if os.Getenv("GRD_REQUIRE_PEERS") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
}

// fillUp writes path until the disk is full.
func fillUp(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 4096)
	for {
		if _, err := f.Write(chunk); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return
			}
			t.Fatal(err)
		}
	}
}

// fgDaemon is a `git-remote-daemon --foreground` and its output lines.
type fgDaemon struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	done   chan error
	mu     sync.Mutex
	lines  []string
	stderr lockedWriter
}

func startForeground(t *testing.T, env []string, dir string) *fgDaemon {
	t.Helper()
	d := &fgDaemon{cmd: exec.Command("git-remote-daemon", "--foreground"), done: make(chan error, 1)}
	d.cmd.Dir, d.cmd.Env = dir, env
	d.cmd.Stderr = &d.stderr
	var err error
	if d.stdin, err = d.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := d.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			d.mu.Lock()
			d.lines = append(d.lines, sc.Text())
			d.mu.Unlock()
		}
		d.done <- d.cmd.Wait()
	}()
	t.Cleanup(func() { _ = d.cmd.Process.Kill() })
	return d
}

func (d *fgDaemon) count(expr string) int {
	re := regexp.MustCompile("^(?:" + expr + ")$")
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, l := range d.lines {
		if re.MatchString(l) {
			n++
		}
	}
	return n
}

func (d *fgDaemon) output() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return strings.Join(d.lines, "\n") + "\nstderr:\n" + tail(d.stderr.String(), 30)
}

func (d *fgDaemon) await(t *testing.T, expr string) { t.Helper(); d.awaitN(t, 1, expr) }

// awaitN waits until n lines match expr. The bound is no measure of
// speed: it stops a daemon that never gets there from hanging the test
// (the retry backoff doubles from 1s, so a fetch retried by itself
// comes within about twice the time the disk was full).
func (d *fgDaemon) awaitN(t *testing.T, n int, expr string) {
	t.Helper()
	deadline := time.Now().Add(3 * waitLimit)
	for d.count(expr) < n {
		if time.Now().After(deadline) {
			t.Fatalf("no %d lines %q; output:\n%s", n, expr, d.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (d *fgDaemon) stop(t *testing.T) {
	t.Helper()
	d.stdin.Close()
	select {
	case err := <-d.done:
		if err != nil {
			t.Fatalf("daemon exit: %v\n%s", err, d.output())
		}
	case <-time.After(waitLimit):
		t.Fatal("the daemon did not stop")
	}
}
