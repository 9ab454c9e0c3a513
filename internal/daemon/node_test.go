package daemon

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/watch"
)

// nodeEnv is the git environment that sends remote m's git commands to
// the repository at path (as th's GitEnv sends them to one node), with
// upload-pack run by uploadPack when set.
func nodeEnv(path, uploadPack string) []string {
	env := []string{"GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=url." + path + ".insteadOf", "GIT_CONFIG_VALUE_0=/nowhere/m"}
	if uploadPack != "" {
		env[0] = "GIT_CONFIG_COUNT=2"
		env = append(env, "GIT_CONFIG_KEY_1=remote.m.uploadpack", "GIT_CONFIG_VALUE_1="+uploadPack)
	}
	return env
}

// A remote with several nodes: the fetch for a change goes to the node
// that reported it, even when another node reported a change since; the
// changes coalesced into one action are fetched from each of their
// nodes, the latest last.
func TestFetchFromTheNodeOfEachChange(t *testing.T) {
	tmp := t.TempDir()
	nodeA, nodeB := filepath.Join(tmp, "a"), filepath.Join(tmp, "b")
	git(t, "", "init", "-q", "-b", "main", nodeA)
	git(t, "", "init", "-q", "-b", "main", nodeB)
	b1 := commit(t, nodeB, "b1")
	a1 := commit(t, nodeA, "a1")

	// While the file block exists, a fetch from B waits (and says so).
	block, started := filepath.Join(tmp, "block"), filepath.Join(tmp, "started")
	wrapper := filepath.Join(tmp, "upload-pack")
	script := "#!/bin/sh\ntouch '" + started + "'\nwhile [ -e '" + block + "' ]; do sleep 0.01; done\nexec git-upload-pack \"$@\"\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(block, nil, 0o644); err != nil {
		t.Fatal(err)
	}

	h := newHarness(t, "remote.m.url /nowhere/m", "remote.m.fetch +refs/heads/*:refs/remotes/m/*")
	s := h.dialer.next(t, "m")
	h.dialer.setEnv("m", nodeEnv(nodeB, wrapper))
	r1 := watch.Refs{"refs/heads/main": b1}
	s.first(t, r1) // from B: fetched (and held up)
	for deadline := time.Now().Add(guard); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(started); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the fetch never started: %q", h.out.all())
		}
	}
	// While it is, A reports a change, then B another one.
	h.dialer.setEnv("m", nodeEnv(nodeA, ""))
	r2 := watch.Refs{"refs/heads/main": a1}
	s.change(t, r1, r2)
	b2 := commit(t, nodeB, "b2")
	h.dialer.setEnv("m", nodeEnv(nodeB, wrapper))
	r3 := watch.Refs{"refs/heads/main": b2}
	s.change(t, r2, r3)
	if err := os.Remove(block); err != nil {
		t.Fatal(err)
	}
	h.out.await(t, 2, "STATUS m fetched")
	h.out.exactly(t, 0, "ERROR .*")
	if err := gitErr(h.dir, "cat-file", "-e", a1+"^{commit}"); err != nil {
		t.Fatalf("A's change was not fetched from A: %v", err)
	}
	if got := git(t, h.dir, "rev-parse", "refs/remotes/m/main"); got != b2 {
		t.Fatalf("m/main is %s, want the latest change %s", got, b2)
	}
}
