//go:build linux

package gitexec

import "syscall"

// sysProcAttr: a process group of its own, and SIGKILL from the kernel
// when the thread that started it dies (Go keeps its threads alive for
// the life of the program unless a goroutine locked to one exits).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
