package sshtest

import (
	"os"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

func TestScripts(t *testing.T) {
	t.Parallel()
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"sshd": Cmd,
		},
		Setup: func(env *testscript.Env) error {
			env.Setenv("HOME", env.WorkDir+"/home")
			env.Setenv("GIT_CONFIG_NOSYSTEM", "1")
			return os.Mkdir(env.WorkDir+"/home", 0o755)
		},
	})
}

// A missing sshd or ssh-keygen fails with a message saying what to install.
// Not parallel: it changes SSHDPath and PATH.
func TestMissingTools(t *testing.T) {
	saved := SSHDPath
	t.Cleanup(func() { SSHDPath = saved })
	SSHDPath = "/nonexistent/sshd"
	_, err := start()
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/sshd") || !strings.Contains(err.Error(), "openssh-server") {
		t.Errorf("start with no sshd: %v", err)
	}
	SSHDPath = saved
	t.Setenv("PATH", t.TempDir())
	_, err = start()
	if err == nil || !strings.Contains(err.Error(), "ssh-keygen") {
		t.Errorf("start with no ssh-keygen: %v", err)
	}
}
