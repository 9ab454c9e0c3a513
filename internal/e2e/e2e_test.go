// Package e2e runs git-remote-daemon end to end, as a user does, with the
// real git binary: scenarios in testdata/script/*.txtar (testscript).
package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/git-remote-daemon/git-remote-daemon/internal/cmdline"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"git-remote-daemon": func() { os.Exit(cmdline.Daemon(os.Args, os.Stdin, os.Stdout, os.Stderr)) },
		"git-remote-th":     func() { os.Exit(cmdline.TH(os.Args, os.Stdin, os.Stdout, os.Stderr)) },
		"git-remote-xmpp":   func() { os.Exit(cmdline.XMPP(os.Args, os.Stdin, os.Stdout, os.Stderr)) },
	})
}

func TestScripts(t *testing.T) {
	t.Parallel()
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		Setup:               setup,
		Cmds:                commands(),
		RequireExplicitExec: true,
	})
}

// setup isolates git: HOME in the work dir, no system config, a fixed
// identity, no prompts; and stops any background daemon the script
// leaves behind.
func setup(env *testscript.Env) error {
	home := env.WorkDir
	for k, v := range map[string]string{
		"HOME":                home,
		"XDG_CONFIG_HOME":     filepath.Join(home, ".config"),
		"GIT_CONFIG_NOSYSTEM": "1",
		"GIT_AUTHOR_NAME":     "Test",
		"GIT_AUTHOR_EMAIL":    "test@example.org",
		"GIT_COMMITTER_NAME":  "Test",
		"GIT_COMMITTER_EMAIL": "test@example.org",
		"GIT_TERMINAL_PROMPT": "0",
		"PATH":                os.Getenv("PATH"),
		// A -race build sleeps 1s at exit: git would wait that long for
		// every ssh-mux shim (the daemon's fetches of ssh remotes).
		"GORACE": "atexit_sleep_ms=0 " + os.Getenv("GORACE"),
	} {
		env.Setenv(k, v)
	}
	gitconfig := "[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n"
	if err := os.WriteFile(filepath.Join(home, ".gitconfig"), []byte(gitconfig), 0o644); err != nil {
		return err
	}
	env.Defer(func() { killBackground(home) })
	trackDaemons(env)
	// GRD is the daemon's absolute path, for remote.<name>.daemonCommand:
	// sshd's sessions do not get this test's PATH.
	grd, err := exec.LookPath("git-remote-daemon")
	if err != nil {
		return err
	}
	env.Setenv("GRD", grd)
	return nil
}

// killBackground kills, by pid, every background daemon started under dir.
func killBackground(dir string) {
	_ = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "daemon.pid" || !strings.Contains(path, "remote-daemon") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil
		}
		var pid int
		for _, c := range strings.TrimSpace(string(data)) {
			pid = pid*10 + int(c-'0')
		}
		if pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		return nil
	})
}
