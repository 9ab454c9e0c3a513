package xmpptest

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes cmd die with the test binary.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
