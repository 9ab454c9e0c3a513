package xmpp

import (
	"net"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestClientConnAcksAtOnce: the server writes our stanzas with Nagle's
// algorithm on (Prosody's default), holding a small write while an
// earlier one is unacknowledged; in a request/response exchange Linux
// delays our ACKs by 40 ms or more (its "pingpong" mode, entered when we
// reply soon after receiving), and each turn of a datagram exchange
// waited that long. The session's connection leaves its socket in
// quickack mode after every read: this checks the mode when a request
// has been read, after exchanges that put the socket in pingpong mode
// without it.
func TestClientConnAcksAtOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	srv, ok := (<-accepted).(*net.TCPConn)
	if !ok {
		t.Fatal("no connection accepted")
	}
	defer srv.Close()
	if err := srv.SetNoDelay(false); err != nil { // as Prosody
		t.Fatal(err)
	}
	rc, err := raw.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	quickack := func() int {
		v := -1
		_ = rc.Control(func(fd uintptr) { v, _ = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_QUICKACK) })
		return v
	}
	g := newGuardConn(raw)
	buf := make([]byte, 64)
	for i := range 20 {
		if _, err := srv.Write([]byte("<message/>")); err != nil {
			t.Fatal(err)
		}
		_ = g.Conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := g.Read(buf); err != nil {
			t.Fatal(err)
		}
		mode := quickack()
		if _, err := g.Write([]byte("<message/>")); err != nil {
			t.Fatal(err)
		}
		_ = srv.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := srv.Read(buf); err != nil {
			t.Fatal(err)
		}
		if i > 0 && mode != 1 {
			t.Fatalf("turn %d: the client connection delays its ACKs (TCP_QUICKACK reads %d)", i, mode)
		}
	}
}
