//go:build !unix

package helper

import (
	"os"
	"os/exec"
)

func setProcessGroup(*exec.Cmd) {}

func killProcess(cmd *exec.Cmd) error { return cmd.Process.Kill() }

func exitCode(ps *os.ProcessState) int { return ps.ExitCode() }
