package thnode

import (
	"path/filepath"
	"sync"
	"testing"
)

// TestLoadOrCreateRace: processes that find no identity at once (a
// daemon starting and `git-remote-daemon address` run right after it, as
// the README's walkthrough does) end up with the same one, the one on
// disk; none goes on with a key that another has overwritten.
func TestLoadOrCreateRace(t *testing.T) {
	t.Parallel()
	for round := range 5 {
		path := filepath.Join(t.TempDir(), "cfg", "th-id.json")
		const n = 8
		var wg sync.WaitGroup
		start := make(chan struct{})
		names := make([]string, n)
		errs := make([]error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				id, err := LoadOrCreate(path)
				if err == nil {
					names[i] = string(id.Hashname())
				}
				errs[i] = err
			}()
		}
		close(start)
		wg.Wait()
		onDisk, err := LoadOrCreate(path)
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("round %d, caller %d: %v", round, i, errs[i])
			}
			if names[i] != string(onDisk.Hashname()) {
				t.Fatalf("round %d: caller %d uses %s, the file holds %s", round, i, names[i], onDisk.Hashname())
			}
		}
		if m, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "*")); len(m) != 1 {
			t.Errorf("round %d: files left: %q", round, m)
		}
	}
}
