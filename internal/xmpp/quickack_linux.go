package xmpp

import (
	"io"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// AckNow returns a reader of c such that every read leaves the socket
// in quickack mode: the kernel then acknowledges what arrives at once
// instead of delaying the ACK (40 ms or more) in the hope of a reply to
// carry it. The server writes to us with Nagle's algorithm on
// (Prosody's default, on client connections and on its SOCKS5 proxy's):
// it holds every small write that follows one we have not acknowledged
// yet, so a delayed ACK cost a request/response turn up to 40 ms
// (xmpppipe's BenchmarkXMPPRoundTrip, BenchmarkXMPPPushToFetched).
func AckNow(c net.Conn) io.Reader {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return c
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return c
	}
	return &quickAckReader{c: c, rc: rc}
}

type quickAckReader struct {
	c  net.Conn
	rc syscall.RawConn
}

func (r *quickAckReader) Read(p []byte) (int, error) {
	n, err := r.c.Read(p)
	if n > 0 {
		_ = r.rc.Control(func(fd uintptr) {
			// Not sticky: the kernel may leave quickack mode again (it
			// does when we send right after receiving), so every read
			// sets it anew. Setting it also sends an ACK still pending.
			_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_QUICKACK, 1)
		})
	}
	return n, err
}
