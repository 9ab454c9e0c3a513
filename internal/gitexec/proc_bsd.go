//go:build unix && !linux

package gitexec

import "syscall"

// sysProcAttr: a process group of its own. There is no Pdeathsig on
// darwin and the BSDs (FreeBSD's procctl PROC_PDEATHSIG_CTL is not
// reachable through os/exec): a child outlives a killed program there.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
