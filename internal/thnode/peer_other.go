//go:build !linux && !darwin && !freebsd

package thnode

import "net"

// peerUID cannot tell the peer's user here: the socket's private
// directory (see checkPrivateDir) is the only guard.
func peerUID(*net.UnixConn) (uid int, ok bool, err error) { return 0, false, nil }
