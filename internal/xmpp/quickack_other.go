//go:build !linux

package xmpp

import (
	"io"
	"net"
)

// AckNow is c: only Linux lets a socket leave delayed ACKs
// (TCP_QUICKACK); elsewhere xmpppipe's nudges bound the wait on a
// bytestream.
func AckNow(c net.Conn) io.Reader { return c }
