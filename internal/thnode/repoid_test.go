package thnode

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// TestRepoID: a repository's id is made once, kept, the same for
// processes asking at once, and remotedaemon.thRepo replaces it.
func TestRepoID(t *testing.T) {
	common := t.TempDir()
	cfg := config(t)
	ids := make([]string, 8)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := RepoID(cfg, common)
			if err != nil {
				t.Error(err)
			}
			ids[i] = id
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] || !validRepoID(id) || len(id) != 16 {
			t.Fatalf("ids %q: want one valid id of 16 characters", ids)
		}
	}
	if again, _ := RepoID(cfg, common); again != ids[0] {
		t.Fatalf("the id changed: %q then %q", ids[0], again)
	}
	if id, err := RepoID(config(t, "remotedaemon.threpo", "work"), common); id != "work" || err != nil {
		t.Fatalf("remotedaemon.thRepo work: %q, %v", id, err)
	}
	if _, err := RepoID(config(t, "remotedaemon.threpo", "a/b"), common); err == nil {
		t.Fatal("remotedaemon.thRepo a/b was taken")
	}
	if err := os.WriteFile(filepath.Join(common, "remote-daemon", "th-repo"), []byte("NOT VALID\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := RepoID(cfg, common); err == nil {
		t.Fatal("a damaged id file was taken")
	}
}
