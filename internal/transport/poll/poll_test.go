package poll

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
	cmd.Env = append(os.Environ(), "HOME="+dir, "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.org", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.org")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestList(t *testing.T) {
	dir := t.TempDir()
	git(t, dir, "init", "-q", "--bare", "up.git")
	git(t, dir, "init", "-q", "work")
	work := filepath.Join(dir, "work")
	git(t, work, "commit", "-q", "--allow-empty", "-m", "x")
	git(t, work, "tag", "v1")
	git(t, work, "push", "-q", "../up.git", "HEAD:refs/heads/main", "v1")
	git(t, work, "remote", "add", "up", "../up.git")
	sha := git(t, work, "rev-parse", "HEAD")

	refs, err := List(context.Background(), work, "up", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(refs) != 2 || refs["refs/heads/main"] != sha || refs["refs/tags/v1"] != sha {
		t.Errorf("List = %v", refs)
	}
	git(t, work, "remote", "add", "gone", "../nothing.git")
	_, err = List(context.Background(), work, "gone", nil)
	if err == nil || !strings.Contains(err.Error(), "git ls-remote --refs gone") || !strings.Contains(err.Error(), "nothing.git") {
		t.Errorf("List of a missing repository: %v", err)
	}
}
