//go:build linux || openbsd || dragonfly || solaris || illumos || aix

package thnode

import "syscall"

// statCtime is the inode change time of st in nanoseconds.
func statCtime(st *syscall.Stat_t) int64 { return st.Ctim.Nano() }
