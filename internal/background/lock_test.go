package background

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// TestOneDaemonWhateverMode: the lock taken by a daemon of any mode
// refuses every other, naming the holder's pid and mode.
func TestOneDaemonWhateverMode(t *testing.T) {
	for _, first := range []Mode{Foreground, Detached, NoDetach} {
		t.Run(string(first), func(t *testing.T) {
			p := PathsFor(t.TempDir())
			lock, err := Acquire(p, first)
			if err != nil {
				t.Fatal(err)
			}
			info, err := Running(p)
			if err != nil {
				t.Fatal(err)
			}
			if want := (Info{PID: os.Getpid(), Mode: first}); info != want {
				t.Errorf("Running = %+v, want %+v", info, want)
			}
			for _, second := range []Mode{Foreground, Detached, NoDetach} {
				_, err := Acquire(p, second)
				var re *RunningError
				if !errors.As(err, &re) || !errors.Is(err, ErrRunning) || re.Info != info {
					t.Fatalf("second daemon (%s): %v, want a RunningError naming %+v", second, err, info)
				}
			}
			lock.Release()
			if _, err := Running(p); !errors.Is(err, ErrNotRunning) {
				t.Errorf("after release: %v, want ErrNotRunning", err)
			}
			for _, f := range []string{p.PID, p.Mode} {
				if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s left behind: %v", filepath.Base(f), err)
				}
			}
			lock, err = Acquire(p, second(first))
			if err != nil {
				t.Fatalf("after release: %v", err)
			}
			lock.Release()
		})
	}
}

func second(m Mode) Mode {
	if m == Foreground {
		return Detached
	}
	return Foreground
}

func TestRunningErrorText(t *testing.T) {
	for _, c := range []struct {
		info Info
		want string
	}{
		{Info{42, Foreground}, "already running in this repository (pid 42), started with --foreground; `git-remote-daemon stop` stops it"},
		{Info{42, NoDetach}, "already running in this repository (pid 42), started with --no-detach; `git-remote-daemon stop` stops it"},
		{Info{42, Detached}, "already running in this repository (pid 42), in the background; `git-remote-daemon stop` stops it"},
		{Info{42, ""}, "already running in this repository (pid 42); `git-remote-daemon stop` stops it"},
	} {
		if got := (&RunningError{Info: c.info}).Error(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.info, got, c.want)
		}
	}
}

// TestStaleFiles: a pid file and mode left by a daemon killed with -9
// are not a running daemon, and the next one takes over.
func TestStaleFiles(t *testing.T) {
	p := PathsFor(t.TempDir())
	if err := os.MkdirAll(p.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.PID, []byte("999999\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.Mode, []byte("--foreground\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Running(p); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("stale pid file: %v, want ErrNotRunning", err)
	}
	lock, err := Acquire(p, Detached)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Release()
	data, err := os.ReadFile(p.PID)
	if err != nil || string(data) != strconv.Itoa(os.Getpid())+"\n" {
		t.Errorf("pid file %q (%v): the pid alone, as tools read it", data, err)
	}
	if info, err := Running(p); err != nil || info.Mode != Detached {
		t.Errorf("Running = %+v, %v", info, err)
	}
	// The directory (log, status, control socket) is the user's alone,
	// also when an older version made it readable by others.
	fi, err := os.Stat(p.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o700 {
		t.Errorf("%s mode %o, want 700", p.Dir, perm)
	}
}
