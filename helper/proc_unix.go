//go:build unix

package helper

import (
	"os"
	"os/exec"
	"syscall"
)

// setProcessGroup puts the service in a process group of its own, so
// killProcess reaches the index-pack or unpack-objects receive-pack runs.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// killProcess kills the service's process group. The caller guarantees
// the service was not yet waited for, so the group id is still its own.
func killProcess(cmd *exec.Cmd) error {
	return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}

// exitCode is the status a shell would report: 128+n for signal n.
func exitCode(ps *os.ProcessState) int {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}
