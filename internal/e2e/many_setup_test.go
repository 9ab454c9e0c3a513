package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/git-remote-daemon/git-remote-daemon/internal/sshtest"
)

// many is a clone with n ssh remotes, each a different bare repository
// behind one loopback sshd, already up to date with every one of them
// (its remote-tracking refs are the remotes' refs, and no state is
// saved: the daemon derives it).
type many struct {
	srv    *sshtest.Server
	names  []string // r0000, r0001, ...
	repos  []string // their bare repositories
	shas   []string // commits c0..cN of src, one chain; every remote starts at c0
	index  map[string]int
	src    string // the repository holding the chain
	clone  string
	gitEnv []string // for the test's own git
	env    []string // for the daemon: counting wrappers first on PATH, GIT_SSH_COMMAND
	logs   string   // logs/git and logs/ssh: "<pid> <args>" per run of each
	farLog string   // the pid of each far-side notify-changes
}

// setupMany builds it, with a chain of commits commits long. fetchHook,
// when not empty, is shell run by the daemon's git wrapper around each
// `git fetch` (before it; $$ is the fetch's pid); farEnv is put before
// the far side's command (VAR=value ...).
func setupMany(tb testing.TB, grd string, n, commits int, fetchHook, farEnv string) *many {
	tb.Helper()
	m := &many{srv: sshtest.Start(tb), index: map[string]int{}}
	dir := tb.TempDir()
	m.gitEnv = isolatedEnv(dir)
	git := func(d string, args ...string) string { tb.Helper(); return runCmd(tb, m.gitEnv, d, "git", args...) }

	// Wrappers on the daemon's PATH that log each run of git and ssh,
	// and the far side's command (its pid, for its CPU).
	bin := filepath.Join(dir, "bin")
	m.logs = filepath.Join(dir, "logs")
	for _, d := range []string{bin, m.logs} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	for _, prog := range []string{"git", "ssh"} {
		real, err := exec.LookPath(prog)
		if err != nil {
			tb.Fatal(err)
		}
		w := fmt.Sprintf("#!/bin/sh\necho \"$$ $*\" >>'%s'\n", filepath.Join(m.logs, prog))
		if prog == "git" && fetchHook != "" {
			w += "for a; do [ \"$a\" = fetch ] && { " + fetchHook + "\n}; done\n"
		}
		w += fmt.Sprintf("exec '%s' \"$@\"\n", real)
		if err := os.WriteFile(filepath.Join(bin, prog), []byte(w), 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	m.farLog = filepath.Join(m.logs, "far")
	farCmd := fmt.Sprintf("echo $$ >>'%s'; %s exec '%s' notify-changes", m.farLog, farEnv, grd)

	m.src = filepath.Join(dir, "src")
	git(dir, "init", "-q", "-b", "main", m.src)
	runCmd(tb, m.gitEnv, m.src, "bash", "-c", fmt.Sprintf(
		"for i in $(seq 0 %d); do git commit -q --allow-empty -m $i; done", commits))
	m.shas = strings.Fields(git(m.src, "rev-list", "--reverse", "main"))
	for i, s := range m.shas {
		m.index[s] = i
	}
	tmpl := filepath.Join(dir, "template.git")
	git(dir, "init", "-q", "--bare", tmpl)
	git(m.src, "push", "-q", tmpl, m.shas[0]+":refs/heads/main")
	m.names, m.repos = make([]string, n), make([]string, n)
	var cfg, refs strings.Builder
	for i := range m.repos {
		m.names[i] = fmt.Sprintf("r%04d", i)
		m.repos[i] = filepath.Join(dir, "remotes", m.names[i]+".git")
		if err := os.CopyFS(m.repos[i], os.DirFS(tmpl)); err != nil {
			tb.Fatal(err)
		}
		fmt.Fprintf(&cfg, "[remote %q]\n\turl = %s\n\tfetch = +refs/heads/*:refs/remotes/%s/*\n\tdaemonCommand = %q\n",
			m.names[i], m.srv.URL(m.repos[i]), m.names[i], farCmd)
		fmt.Fprintf(&refs, "create refs/remotes/%s/main %s\n", m.names[i], m.shas[0])
	}
	m.clone = filepath.Join(dir, "clone")
	git(dir, "init", "-q", m.clone)
	git(m.clone, "fetch", "-q", m.src, "main")
	cmd := exec.Command("git", "update-ref", "--stdin")
	cmd.Dir, cmd.Env, cmd.Stdin = m.clone, m.gitEnv, strings.NewReader(refs.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("update-ref: %v\n%s", err, out)
	}
	git(m.clone, "pack-refs", "--all")
	f, err := os.OpenFile(filepath.Join(m.clone, ".git", "config"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := f.WriteString(cfg.String()); err != nil {
		tb.Fatal(err)
	}
	f.Close()
	m.env = isolatedEnv(dir, "PATH="+bin+string(filepath.ListSeparator)+os.Getenv("PATH"), "GIT_SSH_COMMAND="+m.srv.SSHCommand)
	return m
}

// push pushes commit i of the chain to repository repo (locally).
func (m *many) push(tb testing.TB, repo string, i int) {
	tb.Helper()
	runCmd(tb, m.gitEnv, m.src, "git", "push", "-q", repo, m.shas[i]+":refs/heads/main")
}

// tracked is the chain index of the clone's refs/remotes/<remote>/main
// (-1: none, or not in the chain).
func (m *many) tracked(remote string) int {
	out, _ := exec.Command("git", "-C", m.clone, "rev-parse", "-q", "--verify", "refs/remotes/"+remote+"/main").Output()
	if i, ok := m.index[strings.TrimSpace(string(out))]; ok {
		return i
	}
	return -1
}

// runs returns the logged runs of a wrapped program ("git", "ssh"),
// each "<pid> <args>".
func (m *many) runs(prog string) []string {
	data, _ := os.ReadFile(filepath.Join(m.logs, prog))
	if len(data) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}
