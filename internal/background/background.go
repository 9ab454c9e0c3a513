// Package background runs the daemon detached from the terminal: one
// instance per repository (guarded by a lock on its pid file), a log file,
// a readiness handshake with the process that started it, and stop.
package background

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Paths are the daemon's files under <common git dir>/remote-daemon/.
type Paths struct {
	Dir, PID, Log, Status string
}

// PathsFor returns the files of the daemon of the repository whose common
// git directory is commonDir.
func PathsFor(commonDir string) Paths {
	dir := filepath.Join(commonDir, "remote-daemon")
	return Paths{Dir: dir, PID: filepath.Join(dir, "daemon.pid"),
		Log: filepath.Join(dir, "daemon.log"), Status: filepath.Join(dir, "status.json")}
}

// ErrRunning is wrapped when a daemon already runs in the repository.
var ErrRunning = errors.New("git-remote-daemon is already running in this repository")

// ErrNotRunning is returned by Stop and Running when no daemon runs.
var ErrNotRunning = errors.New("git-remote-daemon is not running in this repository")

// Lock is the held single-instance lock; the pid file holds our pid.
type Lock struct {
	f    *os.File
	path string
}

// Acquire takes the repository's daemon lock and writes our pid, or fails
// with ErrRunning naming the running daemon's pid.
func Acquire(p Paths) (*Lock, error) {
	if err := os.MkdirAll(p.Dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(p.PID, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			pid, _ := readPID(p.PID)
			return nil, fmt.Errorf("%w (pid %d)", ErrRunning, pid)
		}
		return nil, fmt.Errorf("lock %s: %w", p.PID, err)
	}
	if err := f.Truncate(0); err != nil {
		f.Close()
		return nil, err
	}
	if _, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0); err != nil {
		f.Close()
		return nil, err
	}
	return &Lock{f: f, path: p.PID}, nil
}

// Release removes the pid file and drops the lock.
func (l *Lock) Release() {
	_ = os.Remove(l.path)
	_ = l.f.Close()
}

// Running returns the pid of the repository's running daemon, or
// ErrNotRunning. A pid file left by a crashed daemon is not "running":
// nobody holds its lock.
func Running(p Paths) (int, error) {
	f, err := os.Open(p.PID)
	if errors.Is(err, os.ErrNotExist) {
		return 0, ErrNotRunning
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err == nil {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		return 0, ErrNotRunning
	}
	pid, err := readPID(p.PID)
	if err != nil {
		return 0, err
	}
	return pid, nil
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

// Stop sends SIGTERM to the running daemon and waits up to timeout for it
// to exit, then kills it.
func Stop(p Paths, timeout time.Duration) (int, error) {
	pid, err := Running(p)
	if err != nil {
		return 0, err
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return pid, fmt.Errorf("signal pid %d: %w", pid, err)
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if _, err := Running(p); errors.Is(err, ErrNotRunning) {
			return pid, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	return pid, fmt.Errorf("pid %d did not exit within %s; killed", pid, timeout)
}

// MaxLog is the size past which a start rotates the log.
const MaxLog = 10 << 20

// ReadyFDEnv names the environment variable through which a detaching
// parent passes the file descriptor its child reports readiness on.
const ReadyFDEnv = "GIT_REMOTE_DAEMON_READY_FD"

// Detach starts exe with args (the daemon in no-detach mode) as a new
// session with no terminal, stdin from /dev/null and output to the log
// file, and waits until it reports ready or fails. argv0 is the child's
// program name. It returns the child's pid.
func Detach(ctx context.Context, p Paths, exe, argv0 string, args []string, dir string) (int, error) {
	if err := os.MkdirAll(p.Dir, 0o755); err != nil {
		return 0, err
	}
	// Keep one old log: a log past MaxLog starts over, the old one kept
	// as daemon.log.1.
	if fi, err := os.Stat(p.Log); err == nil && fi.Size() > MaxLog {
		_ = os.Rename(p.Log, p.Log+".1")
	}
	logf, err := os.OpenFile(p.Log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return 0, err
	}
	defer logf.Close()
	rd, wr, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer rd.Close()
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		wr.Close()
		return 0, err
	}
	defer devnull.Close()
	cmd := exec.Command(exe, args...)
	cmd.Args[0] = argv0
	cmd.Dir = dir
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, logf, logf
	cmd.ExtraFiles = []*os.File{wr} // fd 3
	cmd.Env = append(os.Environ(), ReadyFDEnv+"=3")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		wr.Close()
		return 0, err
	}
	wr.Close()
	pid := cmd.Process.Pid
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(rd).ReadString('\n')
		line <- strings.TrimSpace(s)
	}()
	select {
	case s := <-line:
		if s == "ready" {
			return pid, nil // the goroutine above reaps it should it exit
		}
		if s == "" {
			err := <-exited
			return 0, fmt.Errorf("daemon exited at start (%v); see %s", err, p.Log)
		}
		<-exited
		return 0, errors.New(s)
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		return 0, ctx.Err()
	}
}

// Ready reports readiness (msg "ready") or a start-up error to the parent
// that detached us, if any.
func Ready(msg string) {
	fd, err := strconv.Atoi(os.Getenv(ReadyFDEnv))
	if err != nil || fd < 3 {
		return
	}
	os.Unsetenv(ReadyFDEnv)
	f := os.NewFile(uintptr(fd), "ready")
	_, _ = f.WriteString(strings.ReplaceAll(msg, "\n", " ") + "\n")
	_ = f.Close()
}
