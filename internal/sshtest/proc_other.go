//go:build !linux

package sshtest

import "os/exec"

// dieWithParent: only Linux ties a child's life to its parent's; the
// tests stop sshd by pid in Cleanup anyway.
func dieWithParent(*exec.Cmd) {}
