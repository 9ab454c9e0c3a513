// Package background keeps one daemon per repository, whatever its mode
// (a lock on its pid file, with the mode beside it), and runs the daemon
// detached from the terminal: a log file, a readiness handshake with the
// process that started it, and stop.
package background

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Stop sends SIGTERM to the running daemon and waits up to timeout for it
// to exit, then kills it. It returns the daemon that ran.
func Stop(ctx context.Context, p Paths, timeout time.Duration) (Info, error) {
	info, err := Running(p)
	if err != nil {
		return Info{}, err
	}
	if err := syscall.Kill(info.PID, syscall.SIGTERM); err != nil {
		return info, fmt.Errorf("signal pid %d: %w", info.PID, err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, err := Running(p); errors.Is(err, ErrNotRunning) {
			return info, nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				_ = syscall.Kill(info.PID, syscall.SIGKILL)
				return info, fmt.Errorf("pid %d did not exit within %s; killed", info.PID, timeout)
			}
			return info, ctx.Err()
		}
	}
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
	if err := mkdirPrivate(p.Dir); err != nil {
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
