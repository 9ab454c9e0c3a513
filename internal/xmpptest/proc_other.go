//go:build !linux

package xmpptest

import "os/exec"

// dieWithParent: only Linux ties a child's life to its parent's; Stop
// ends prosody by pid anyway.
func dieWithParent(*exec.Cmd) {}
