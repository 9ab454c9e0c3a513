package gitrepo

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func git(t testing.TB, dir string, args ...string) string {
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

// repos makes a work tree "work" with a linked worktree "linked" and a
// bare "bare.git" in a fresh directory, which it returns (symlinks
// resolved, as git prints paths).
func repos(t *testing.T) string {
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	git(t, dir, "init", "-q", "work")
	git(t, dir, "init", "-q", "--bare", "bare.git")
	git(t, dir, "-C", "work", "commit", "-q", "--allow-empty", "-m", "x")
	git(t, dir, "-C", "work", "worktree", "add", "-q", "-b", "other", "../linked")
	return dir
}

func TestFindGitDir(t *testing.T) {
	dir := repos(t)
	t.Setenv("HOME", dir)
	for in, want := range map[string]string{
		dir + "/work":         dir + "/work/.git",
		dir + "/work/.git":    dir + "/work/.git",
		dir + "/bare":         dir + "/bare.git",
		dir + "/bare.git":     dir + "/bare.git",
		"~/bare.git":          dir + "/bare.git",
		dir + "/linked":       dir + "/work/.git",
		dir + "/work/../bare": dir + "/bare.git",
	} {
		got, err := FindGitDir(in)
		if err != nil || got != want {
			t.Errorf("FindGitDir(%s) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := FindGitDir(dir + "/nothing"); !errors.Is(err, ErrNoRepository) {
		t.Errorf("missing repository: %v", err)
	}
	if _, err := FindGitDir(dir); !errors.Is(err, ErrNoRepository) {
		t.Errorf("plain directory: %v", err)
	}
}

func TestIsRepo(t *testing.T) {
	dir := repos(t)
	for in, want := range map[string]bool{
		dir + "/work":      true,
		dir + "/work/.git": true,
		dir + "/linked":    true,
		dir + "/bare.git":  true,
		dir + "/bare":      false, // no search: the path as given
		dir:                false,
		dir + "/nothing":   false,
	} {
		if got := IsRepo(in); got != want {
			t.Errorf("IsRepo(%s) = %v, want %v", in, got, want)
		}
	}
}

func TestFind(t *testing.T) {
	dir := repos(t)
	if err := os.Mkdir(dir+"/work/sub", 0o755); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for in, want := range map[string]Repo{
		dir + "/work/sub":  {Dir: dir + "/work", GitDir: dir + "/work/.git", CommonDir: dir + "/work/.git"},
		dir + "/work/.git": {Dir: dir + "/work/.git", GitDir: dir + "/work/.git", CommonDir: dir + "/work/.git"},
		dir + "/linked":    {Dir: dir + "/linked", GitDir: dir + "/work/.git/worktrees/linked", CommonDir: dir + "/work/.git"},
		dir + "/bare.git":  {Dir: dir + "/bare.git", GitDir: dir + "/bare.git", CommonDir: dir + "/bare.git", Bare: true},
	} {
		got, err := Find(ctx, in)
		if err != nil || got != want {
			t.Errorf("Find(%s) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	if _, err := Find(ctx, dir); err == nil || !strings.Contains(err.Error(), "not in a git repository") {
		t.Errorf("Find outside a repository: %v", err)
	}
}

func TestMapRef(t *testing.T) {
	specs := ParseRefspecs([]string{"+refs/heads/*:refs/remotes/origin/*", "^refs/heads/tmp/*",
		"refs/notes/commits:refs/notes/origin", "refs/heads/x*y:refs/remotes/o/xy*", "bogus", ":refs/x", "^"})
	for ref, want := range map[string]string{
		"refs/heads/main":    "refs/remotes/origin/main",
		"refs/heads/a/b/c":   "refs/remotes/origin/a/b/c",
		"refs/heads/tmp/foo": "",
		"refs/notes/commits": "refs/notes/origin",
		"refs/tags/v1":       "",
	} {
		got, ok := specs.Map(ref)
		if ok != (want != "") || got != want {
			t.Errorf("Map(%s) = %q, %v; want %q", ref, got, ok, want)
		}
	}
	if !specs[0].Force || specs[2].Force || !specs[1].Negative || len(specs) != 4 {
		t.Errorf("parsed %+v", specs)
	}
}

func FuzzParseRefspecs(f *testing.F) {
	f.Add("+refs/heads/*:refs/remotes/origin/*", "refs/heads/main")
	f.Add("^refs/heads/tmp/*", "refs/heads/tmp/x")
	f.Add("refs/heads/x*y:refs/o/*", "refs/heads/xy")
	f.Fuzz(func(t *testing.T, spec, ref string) {
		specs := ParseRefspecs([]string{spec})
		local, ok := specs.Map(ref)
		if !ok && local != "" {
			t.Fatalf("Map(%q) through %q = %q without a match", ref, spec, local)
		}
		for _, s := range specs {
			if s.Src == "" || s.Negative == (s.Dst != "") {
				t.Fatalf("ParseRefspecs(%q) = %+v", spec, s)
			}
		}
	})
}
