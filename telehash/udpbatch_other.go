//go:build !linux

package telehash

import "net"

// newDatagramIO returns plainIO: batching is implemented for Linux only.
func newDatagramIO(conn *net.UDPConn, plain, noGSO bool) datagramIO { return newPlainIO(conn) }
