//go:build linux || freebsd

package gitexec

import "syscall"

// sysProcAttr: a process group of its own, and SIGKILL from the kernel
// when its parent dies (Linux: prctl PR_SET_PDEATHSIG, tied to the thread
// that started it, which Go keeps alive for the life of the program
// unless a goroutine locked to one exits; FreeBSD: procctl
// PROC_PDEATHSIG_CTL).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
