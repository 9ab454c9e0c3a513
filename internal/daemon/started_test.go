package daemon

import (
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestStartedListsRemotes: Serve calls Started once every remote has
// started, and by then the status file lists each of them, so a
// background start that reports itself up there is followed by a
// `status` that shows every remote (not "no remotes").
func TestStartedListsRemotes(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "status.json")
	seen := make(chan []string, 2)
	newHarnessWith(t, func(o *Options) {
		o.StatusFile = file
		o.Started = func() {
			rep, err := ReadReport(file)
			if err != nil {
				t.Errorf("status file at Started: %v", err)
			}
			var names []string
			for _, r := range rep.Remotes {
				names = append(names, r.Name+" "+r.State)
			}
			seen <- names
		}
	}, "remote.a.url /nowhere/a", "remote.b.url /nowhere/b")
	select {
	case names := <-seen:
		if want := []string{"a connecting", "b connecting"}; !slices.Equal(names, want) {
			t.Errorf("status at Started: %q, want %q", names, want)
		}
	case <-time.After(guard):
		t.Fatal("Started never called")
	}
	select {
	case <-seen:
		t.Error("Started called twice")
	default:
	}
}
