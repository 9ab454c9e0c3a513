package ssh

import (
	"os"
	"reflect"
	"testing"

	"github.com/git-remote-daemon/git-remote-daemon/internal/gitcfg"
)

func TestParseURL(t *testing.T) {
	for in, want := range map[string]target{
		"ssh://host/srv/r.git":              {Host: "host", Path: "/srv/r.git"},
		"ssh://me@host:2222/srv/r":          {User: "me", Host: "host", Port: 2222, Path: "/srv/r"},
		"git+ssh://host/~/r":                {Host: "host", Path: "~/r"},
		"ssh+git://host/~me/r":              {Host: "host", Path: "~me/r"},
		"ssh://[::1]:22/r":                  {Host: "::1", Port: 22, Path: "/r"},
		"ssh://a@b@host/r":                  {User: "a@b", Host: "host", Path: "/r"},
		"host:r.git":                        {Host: "host", Path: "r.git"},
		"me@host:/srv/r":                    {User: "me", Host: "host", Path: "/srv/r"},
		"[me@host:2222]:srv/r":              {User: "me", Host: "host", Port: 2222, Path: "srv/r"},
		"[::1]:r":                           {Host: "::1", Path: "r"},
		"git@example.org:owner/project.git": {User: "git", Host: "example.org", Path: "owner/project.git"},
	} {
		got, err := parseURL(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("parseURL(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"ssh://host", "ssh://host/", "ssh://-oProxyCommand=x/r", "-oProxyCommand=x:r",
		"ssh://host:99999/r", "[host:2222:r", "host:", "ssh://-me@host/r"} {
		if got, err := parseURL(bad); err == nil {
			t.Errorf("parseURL(%q) = %+v, want an error", bad, got)
		}
	}
}

func TestResolveSSH(t *testing.T) {
	cfg := func(kv ...string) *gitcfg.Config {
		var b []byte
		for i := 0; i < len(kv); i += 2 {
			b = append(b, []byte(kv[i]+"\n"+kv[i+1]+"\x00")...)
		}
		c, err := gitcfg.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, k := range []string{"GIT_SSH_COMMAND", "GIT_SSH", "GIT_SSH_VARIANT"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	tgt := target{User: "me", Host: "h", Port: 2222}
	s := resolveSSH(cfg())
	if s.program != "ssh" || s.variant != "ssh" {
		t.Fatalf("default: %+v", s)
	}
	args, _ := s.args(tgt, []string{"-o", "BatchMode=yes"}, "cmd")
	if want := []string{"-o", "BatchMode=yes", "-p", "2222", "me@h", "cmd"}; !reflect.DeepEqual(args, want) {
		t.Errorf("args = %q", args)
	}
	if s := resolveSSH(cfg("core.sshcommand", "ssh -F /x/cfg")); s.shell != "ssh -F /x/cfg" || s.variant != "ssh" {
		t.Errorf("core.sshCommand: %+v", s)
	}
	t.Setenv("GIT_SSH", "/opt/bin/plink.exe")
	s = resolveSSH(cfg())
	if s.program != "/opt/bin/plink.exe" || s.variant != "plink" {
		t.Errorf("GIT_SSH plink: %+v", s)
	}
	args, _ = s.args(tgt, []string{"-o", "ignored"}, "")
	if want := []string{"-batch", "-P", "2222", "me@h"}; !reflect.DeepEqual(args, want) {
		t.Errorf("plink args = %q", args)
	}
	t.Setenv("GIT_SSH_COMMAND", "env A=1 /usr/bin/ssh -v")
	if s := resolveSSH(cfg("core.sshcommand", "other")); s.shell != "env A=1 /usr/bin/ssh -v" || s.variant != "ssh" {
		t.Errorf("GIT_SSH_COMMAND wins: %+v", s)
	}
	if s := resolveSSH(cfg("ssh.variant", "simple")); s.variant != "simple" {
		t.Errorf("ssh.variant: %+v", s)
	} else if _, err := s.args(tgt, nil, ""); err == nil {
		t.Error("simple variant accepted a port")
	}
	s = sshCommand{program: "/my ssh"}
	if got := s.commandLine("-o", "ControlPath=/tmp/a b"); got != `'/my ssh' -o 'ControlPath=/tmp/a b'` {
		t.Errorf("commandLine = %s", got)
	}
}
