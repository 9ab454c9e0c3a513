//go:build unix && !linux && !freebsd

package gitexec

import "syscall"

// sysProcAttr: a process group of its own. darwin, OpenBSD and NetBSD
// have no parent-death signal: a child outlives a killed program there.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
