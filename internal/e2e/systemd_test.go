package e2e

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSystemdUnit runs the shipped systemd user unit as systemd would, as
// far as this machine allows (no systemd runs here): the ExecStart line
// with %h and %I expanded, in WorkingDirectory, with stdin on /dev/null;
// it must stay up and fetch, reload on ExecReload's SIGHUP, and exit 0 on
// SIGTERM.
func TestSystemdUnit(t *testing.T) {
	t.Parallel()
	unit := parseUnit(t, "../../contrib/systemd/git-remote-daemon@.service")
	for key, want := range map[string]string{
		"Type":             "simple",
		"WorkingDirectory": "%h/%I",
		"ExecReload":       "/bin/kill -HUP $MAINPID",
	} {
		if unit[key] != want {
			t.Errorf("%s=%q, want %q", key, unit[key], want)
		}
	}
	home := t.TempDir()
	repo := filepath.Join(home, "notes", "papers") // instance notes-papers
	env := isolatedEnv(home)
	git := func(dir string, args ...string) {
		t.Helper()
		runCmd(t, env, dir, "git", args...)
	}
	git(home, "init", "-q", "--bare", "up.git")
	git(home, "init", "-q", "-b", "main", "src")
	git(home, "init", "-q", repo)
	git(repo, "remote", "add", "origin", "../../up.git")

	// ExecStart as systemd runs it (%h expanded, $$ unescaped, words
	// split). The binary, this test binary (which runs git-remote-daemon
	// when called so), is in a directory on the PATH only, as when
	// installed anywhere but ~/go/bin: the unit must find it there.
	argv := unitWords(strings.ReplaceAll(strings.ReplaceAll(unit["ExecStart"], "%h", home), "$$", "$"))
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(home, "opt", "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(self, filepath.Join(bin, "git-remote-daemon")); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	env = append(env, "PATH="+bin+string(filepath.ListSeparator)+pathWithout("git-remote-daemon"))
	cmd.Dir = strings.ReplaceAll(strings.ReplaceAll(unit["WorkingDirectory"], "%h", home), "%I", "notes/papers")
	cmd.Env = env
	cmd.Stdin = nil // /dev/null, as systemd does
	stderr := &lockedWriter{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Kill()
	}()

	git(filepath.Join(home, "src"), "commit", "-q", "--allow-empty", "-m", "one")
	git(filepath.Join(home, "src"), "push", "-q", "../up.git", "main")
	waitFile(t, filepath.Join(repo, ".git/refs/remotes/origin/main"), exited, stderr)

	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil { // ExecReload
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil { // systemctl stop
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(waitLimit):
		t.Fatal("no exit after SIGTERM")
	}
	if !strings.Contains(stderr.String(), "msg=stopped") {
		t.Errorf("stderr:\n%s", stderr.String())
	}
}

func waitFile(t *testing.T, path string, exited chan error, stderr *lockedWriter) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(path); err == nil {
			return
		}
		select {
		case err := <-exited:
			t.Fatalf("daemon exited (%v):\n%s", err, stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("%s never appeared:\n%s", path, stderr.String())
}

// parseUnit reads the [Service] and [Unit] keys of a unit file.
func parseUnit(t *testing.T, path string) map[string]string {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "[") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: bad line %q", path, line)
		}
		out[k] = v
	}
	return out
}

// unitWords splits a unit's command line into words as systemd does for
// the quoting used here ('...' and "...").
func unitWords(line string) []string {
	var words []string
	var w strings.Builder
	quote, in := rune(0), false
	for _, r := range line {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			w.WriteRune(r)
		case r == '\'' || r == '"':
			quote, in = r, true
		case r == ' ' || r == '\t':
			if in {
				words = append(words, w.String())
				w.Reset()
				in = false
			}
		default:
			w.WriteRune(r)
			in = true
		}
	}
	if in {
		words = append(words, w.String())
	}
	return words
}

// pathWithout is $PATH less the directories that hold name.
func pathWithout(name string) string {
	var keep []string
	for _, d := range filepath.SplitList(os.Getenv("PATH")) {
		if _, err := os.Stat(filepath.Join(d, name)); err != nil {
			keep = append(keep, d)
		}
	}
	return strings.Join(keep, string(filepath.ListSeparator))
}
