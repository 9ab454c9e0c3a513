//go:build !unix

package gitexec

import (
	"os"
	"syscall"
)

var (
	sigTerm = os.Kill // no SIGTERM to send: end at once
	sigKill = os.Kill
)

func sysProcAttr() *syscall.SysProcAttr { return nil }

// signalGroup does nothing: there are no process groups to signal; the
// leader is signalled by the caller.
func signalGroup(int, os.Signal) {}

// ExitCode is the process's exit status.
func ExitCode(ps *os.ProcessState) int { return ps.ExitCode() }
