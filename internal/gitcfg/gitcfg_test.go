package gitcfg

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir, "GIT_CONFIG_NOSYSTEM=1", "XDG_CONFIG_HOME="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestParse(t *testing.T) {
	c, err := Parse([]byte("core.bare\nfalse\x00remote.Origin.url\n/srv/a\x00remote.Origin.daemonwatch\x00" +
		"remote.Origin.fetch\n+refs/heads/*:refs/remotes/Origin/*\x00remote.Origin.fetch\nrefs/tags/*:refs/tags/*\x00" +
		"remote.x.daemonaction\nPull\x00remote.x.url\nssh://h/x\x00remote.x.daemonpush\nmaybe\x00remote.y.url\n\x00"))
	if err != nil {
		t.Fatal(err)
	}
	rs := c.Remotes()
	if len(rs) != 3 {
		t.Fatalf("remotes = %+v", rs)
	}
	o := rs[0]
	if o.Name != "Origin" || o.URL != "/srv/a" || !o.Watch || o.Action != ActionFetch || o.Push || o.Err != nil {
		t.Errorf("Origin = %+v", o)
	}
	if got := o.Settings["fetch"]; len(got) != 2 {
		t.Errorf("fetch settings = %q", got)
	}
	if x := rs[1]; x.Action != ActionPull || x.Err == nil || !strings.Contains(x.Err.Error(), "maybe") {
		t.Errorf("x = %+v", x)
	}
	if y := rs[2]; y.Err != ErrNoURL {
		t.Errorf("y = %+v", y)
	}
	if _, err := Parse([]byte("bad key\nv\x00")); err == nil {
		t.Error("a key with a space was accepted")
	}
}

func TestBool(t *testing.T) {
	for v, want := range map[string]bool{"yes": true, "On": true, "TRUE": true, "1": true, "no": false, "off": false, "0": false, "": false} {
		got, err := ParseBool(v)
		if err != nil || got != want {
			t.Errorf("ParseBool(%q) = %v, %v", v, got, err)
		}
	}
	if _, err := ParseBool("2"); err == nil {
		t.Error("ParseBool(2) accepted")
	}
}

// TestReadAsGitSees checks includes, includeIf and insteadOf against git's
// own answer (`git remote get-url`).
func TestReadAsGitSees(t *testing.T) {
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	git(t, dir, "init", "-q", repo)
	inc := filepath.Join(dir, "inc.cfg")
	if err := os.WriteFile(inc, []byte("[remote \"inc\"]\n\turl = gh:me/inc.git\n\tdaemonAction = none\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cond := filepath.Join(dir, "cond.cfg")
	if err := os.WriteFile(cond, []byte("[remote \"cond\"]\n\turl = gh:me/cond\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	git(t, repo, "config", "include.path", inc)
	git(t, repo, "config", "includeIf.gitdir:"+dir+"/**.path", cond)
	git(t, repo, "config", "url.ssh://git@example.org/.insteadOf", "gh:")
	git(t, repo, "config", "url.ssh://other/.insteadOf", "g")
	git(t, repo, "remote", "add", "plain", "../elsewhere")
	git(t, repo, "config", "remote.plain.daemonWatch", "false")

	t.Setenv("HOME", dir)
	t.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	c, err := Read(context.Background(), repo)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Remote{}
	for _, r := range c.Remotes() {
		got[r.Name] = r
	}
	for _, name := range []string{"inc", "cond", "plain"} {
		r, ok := got[name]
		if !ok {
			t.Errorf("remote %s not found in %v", name, got)
			continue
		}
		if want := git(t, repo, "remote", "get-url", name); r.URL != want {
			t.Errorf("%s: url %q, git says %q", name, r.URL, want)
		}
	}
	if got["inc"].Action != ActionNone || got["plain"].Watch {
		t.Errorf("settings not read: %+v", got)
	}
}

// FuzzParse: `git config -z --list` output never panics the parser, and
// every remote it yields has a name.
func FuzzParse(f *testing.F) {
	f.Add([]byte("remote.o.url\n/x\x00remote.o.daemonwatch\x00"))
	f.Add([]byte("url.a.insteadof\nb\x00remote.r.url\nbc\x00"))
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := Parse(in)
		if err != nil {
			return
		}
		for _, r := range c.Remotes() {
			if r.Name == "" && r.Err == nil {
				t.Fatalf("remote without a name: %+v", r)
			}
		}
	})
}
