package background

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Paths are the daemon's files under <common git dir>/remote-daemon/.
type Paths struct {
	// Dir holds them all; it is made private to the user (0700): the
	// control socket in it accepts commands from whoever can reach it.
	Dir string
	// PID holds the running daemon's pid and is the one-daemon lock;
	// Mode beside it says how that daemon was started.
	PID, Mode string
	// Log is the detached daemon's log; Status is what `status` reads.
	Log, Status string
	// Control is the unix socket that takes commands for the running
	// daemon (`git-remote-daemon pause`...).
	Control string
}

// PathsFor returns the files of the daemon of the repository whose common
// git directory is commonDir.
func PathsFor(commonDir string) Paths {
	dir := filepath.Join(commonDir, "remote-daemon")
	return Paths{Dir: dir, PID: filepath.Join(dir, "daemon.pid"), Mode: filepath.Join(dir, "daemon.mode"),
		Log: filepath.Join(dir, "daemon.log"), Status: filepath.Join(dir, "status.json"),
		Control: filepath.Join(dir, "control.sock")}
}

// Mode is how a daemon was started.
type Mode string

// The modes of a daemon, as `status` and the one-daemon message name them.
const (
	// Detached is the background daemon started by `git-remote-daemon`.
	Detached Mode = "background"
	// NoDetach is `git-remote-daemon --no-detach` (systemd and the like).
	NoDetach Mode = "--no-detach"
	// Foreground is `git-remote-daemon --foreground` (the stdio protocol).
	Foreground Mode = "--foreground"
)

// Info is what the lock says of the running daemon.
type Info struct {
	PID  int
	Mode Mode // "" when the daemon did not say (an older version)
}

// String is "pid 42, --foreground" (the mode left out when unknown).
func (i Info) String() string {
	if i.Mode == "" {
		return fmt.Sprintf("pid %d", i.PID)
	}
	return fmt.Sprintf("pid %d, %s", i.PID, i.Mode)
}

// ErrRunning is wrapped when a daemon already runs in the repository.
var ErrRunning = errors.New("already running in this repository")

// ErrNotRunning is returned by Stop and Running when no daemon runs.
var ErrNotRunning = errors.New("not running in this repository")

// RunningError says which daemon holds the lock.
type RunningError struct{ Info Info }

func (e *RunningError) Error() string {
	msg := fmt.Sprintf("%v (pid %d)", ErrRunning, e.Info.PID)
	switch e.Info.Mode {
	case Detached:
		msg += ", in the background"
	case NoDetach, Foreground:
		msg += ", started with " + string(e.Info.Mode)
	}
	return msg + "; `git-remote-daemon stop` stops it"
}

// Unwrap makes errors.Is(err, ErrRunning) hold.
func (e *RunningError) Unwrap() error { return ErrRunning }

// Lock is the held single-instance lock; the pid file holds our pid.
type Lock struct {
	f     *os.File
	paths Paths
}

// mkdirPrivate makes dir, and makes it private to the user should an
// older version have made it readable by others.
func mkdirPrivate(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if fi.Mode().Perm() != 0o700 {
		return os.Chmod(dir, 0o700)
	}
	return nil
}

// Acquire takes the repository's daemon lock, whatever mode the daemon
// runs in, records our pid and mode, or fails with a *RunningError
// naming the running daemon.
func Acquire(p Paths, mode Mode) (*Lock, error) {
	if err := mkdirPrivate(p.Dir); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(p.PID, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, &RunningError{Info: readInfo(p)}
		}
		return nil, fmt.Errorf("lock %s: %w", p.PID, err)
	}
	fail := func(err error) (*Lock, error) {
		f.Close()
		return nil, err
	}
	// The mode first: whoever sees our pid finds our mode.
	if err := os.WriteFile(p.Mode, []byte(string(mode)+"\n"), 0o644); err != nil {
		return fail(err)
	}
	if err := f.Truncate(0); err != nil {
		return fail(err)
	}
	if _, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0); err != nil {
		return fail(err)
	}
	return &Lock{f: f, paths: p}, nil
}

// Release removes the pid and mode files and drops the lock.
func (l *Lock) Release() {
	_ = os.Remove(l.paths.Mode)
	_ = os.Remove(l.paths.PID)
	_ = l.f.Close()
}

// Running returns the repository's running daemon, or ErrNotRunning. A
// pid file left by a crashed daemon is not "running": nobody holds its
// lock.
func Running(p Paths) (Info, error) {
	f, err := os.Open(p.PID)
	if errors.Is(err, os.ErrNotExist) {
		return Info{}, ErrNotRunning
	}
	if err != nil {
		return Info{}, err
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err == nil {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		return Info{}, ErrNotRunning
	}
	pid, err := readPID(p.PID)
	if err != nil {
		return Info{}, err
	}
	return Info{PID: pid, Mode: readMode(p.Mode)}, nil
}

// readInfo is what can be read of the daemon holding the lock.
func readInfo(p Paths) Info {
	pid, _ := readPID(p.PID)
	return Info{PID: pid, Mode: readMode(p.Mode)}
}

func readMode(path string) Mode {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	switch m := Mode(strings.TrimSpace(string(data))); m {
	case Detached, NoDetach, Foreground:
		return m
	}
	return ""
}

func readPID(path string) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("%s: bad pid %q", path, strings.TrimSpace(string(data)))
	}
	return pid, nil
}
