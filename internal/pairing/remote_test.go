package pairing

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestRemote(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	t.Setenv("HOME", dir)
	t.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	git(t, dir, "init", "-q")
	git(t, dir, "remote", "add", "taken", "/elsewhere")
	bob, carol, dave := testAddr(t), testAddr(t), testAddr(t, "127.0.0.1:4242")

	// The suggested name, sanitized; read only unless asked.
	name, err := Remote(ctx, dir, bob, RemoteOptions{Suggested: "Bob B."})
	if err != nil || name != "bob-b" {
		t.Fatalf("Remote = %q, %v", name, err)
	}
	if got := git(t, dir, "config", "remote.bob-b.url"); got != bob.String() {
		t.Errorf("url %q, want %q", got, bob)
	}
	if out, _ := exec.Command("git", "-C", dir, "config", "remote.bob-b.daemonAllowPush").Output(); len(out) != 0 {
		t.Errorf("daemonAllowPush set: %q", out)
	}
	// The same node again: the remote naming it is kept, push granted when asked.
	name, err = Remote(ctx, dir, bob, RemoteOptions{Name: "other", AllowPush: true})
	if err != nil || name != "bob-b" {
		t.Fatalf("again: %q, %v", name, err)
	}
	if got := git(t, dir, "config", "remote.bob-b.daemonAllowPush"); got != "true" {
		t.Errorf("daemonAllowPush %q", got)
	}
	// A taken suggestion falls back to th-<hashname prefix>; a taken
	// explicit name is an error and nothing is overwritten.
	name, err = Remote(ctx, dir, carol, RemoteOptions{Suggested: "taken"})
	if err != nil || name != "th-"+string(carol.Hashname)[:8] {
		t.Fatalf("fallback: %q, %v", name, err)
	}
	if _, err := Remote(ctx, dir, dave, RemoteOptions{Name: "taken"}); !errors.Is(err, ErrRemoteExists) {
		t.Fatalf("taken name: %v", err)
	}
	if got := git(t, dir, "config", "remote.taken.url"); got != "/elsewhere" {
		t.Errorf("taken remote's url is now %q", got)
	}
	// Another repository of a node already named is another remote.
	bobOther := bob
	bobOther.Repo = "other"
	git(t, dir, "config", "remote.bob-b.url", bob.String()+"&repo=first")
	if name, err := Remote(ctx, dir, bobOther, RemoteOptions{Name: "bob-other"}); err != nil || name != "bob-other" {
		t.Fatalf("another repository of bob: %q, %v", name, err)
	}
	if err := CheckName(ctx, dir, "taken"); !errors.Is(err, ErrRemoteExists) {
		t.Errorf("CheckName(taken): %v", err)
	}
	for _, bad := range []string{"a b", "-x", "a..b", "*"} {
		if err := CheckName(ctx, dir, bad); err == nil {
			t.Errorf("CheckName(%q) accepted", bad)
		}
	}
	if err := CheckName(ctx, dir, "fine"); err != nil {
		t.Errorf("CheckName(fine): %v", err)
	}
}
