package xmpppipe

import (
	"net"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestBytestreamAcksAtOnce: the proxy writes to us with Nagle's
// algorithm on (Prosody's default), holding a small write while an
// earlier one is unacknowledged. In a request/response exchange Linux
// delays our ACKs (its "pingpong" mode, entered when we reply soon after
// receiving) by 40 ms or more, and each such turn of a fetch waited that
// long. The bytestream's reader leaves the socket in quickack mode
// after every read: this checks the mode when a frame is delivered,
// after exchanges that put the socket in pingpong mode without it.
func TestBytestreamAcksAtOnce(t *testing.T) {
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
	ours, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	proxy := (<-accepted).(*net.TCPConn)
	if proxy == nil {
		t.Fatal("no connection accepted")
	}
	defer proxy.Close()
	if err := proxy.SetNoDelay(false); err != nil { // as Prosody's proxy65
		t.Fatal(err)
	}
	rc, err := ours.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	quickack := func() int {
		v := -1
		_ = rc.Control(func(fd uintptr) { v, _ = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_QUICKACK) })
		return v
	}

	f := newFramed(ours, true)
	defer f.close()
	const turns = 20
	modes := make(chan int, turns)
	go func() {
		_ = f.readLoop(func(pkt []byte) {
			modes <- quickack() // before our reply, as the next request arrives
			_ = f.send([]byte("response"))
		})
	}()
	buf := make([]byte, 4096)
	for i := range turns {
		if _, err := proxy.Write(appendFrame(nil, []byte("request"))); err != nil {
			t.Fatal(err)
		}
		var mode int
		select {
		case mode = <-modes:
		case <-time.After(10 * time.Second):
			t.Fatalf("turn %d: the request was not delivered", i)
		}
		// The response (and maybe nudges), read as Prosody would.
		if err := proxy.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
			t.Fatal(err)
		}
		if _, err := proxy.Read(buf); err != nil {
			t.Fatal(err)
		}
		if i > 0 && mode != 1 {
			t.Fatalf("turn %d: the bytestream socket delays its ACKs (TCP_QUICKACK reads %d)", i, mode)
		}
	}
}
