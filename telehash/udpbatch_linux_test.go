//go:build linux

package telehash

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// udpPair returns two loopback sockets, each with a batching datagramIO.
func udpPair(t *testing.T, noGSO bool) (a, b *batchIO, bAddr netip.AddrPort) {
	t.Helper()
	open := func() (*net.UDPConn, *batchIO) {
		c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetReadBuffer(4 << 20)
		io, ok := newDatagramIO(c, false, noGSO).(*batchIO)
		if !ok {
			t.Fatal("no batchIO on Linux")
		}
		return c, io
	}
	_, a = open()
	cb, b := open()
	return a, b, cb.LocalAddr().(*net.UDPAddr).AddrPort()
}

// readN reads n datagrams from b (cloakSpare must be usable on each).
func readN(t *testing.T, b *batchIO, n int) [][]byte {
	t.Helper()
	var got [][]byte
	_ = b.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for len(got) < n {
		err := b.read(func(d []byte, _ netip.AddrPort) {
			if cap(d)-len(d) < cloakSpare {
				t.Errorf("datagram %d: %d spare bytes, want %d", len(got), cap(d)-len(d), cloakSpare)
			}
			got = append(got, append([]byte(nil), d...))
		})
		if err != nil {
			t.Fatalf("after %d datagrams of %d: %v", len(got), n, err)
		}
	}
	return got
}

func datagrams(sizes ...int) [][]byte {
	var out [][]byte
	for i, n := range sizes {
		out = append(out, bytes.Repeat([]byte{byte(i + 1)}, n))
	}
	return out
}

// Runs of equal-size datagrams go out as GSO messages (fewer messages than
// datagrams), are read back split (GRO) and in order.
func TestBatchIOGSORoundTrip(t *testing.T) {
	for _, noGSO := range []bool{false, true} {
		t.Run(fmt.Sprintf("noGSO=%v", noGSO), func(t *testing.T) {
			a, b, to := udpPair(t, noGSO)
			if !noGSO && (!a.gso() || !b.gro) {
				t.Fatalf("kernel without UDP GSO/GRO? gso %v gro %v", a.gso(), b.gro)
			}
			var sizes []int
			for range 100 {
				sizes = append(sizes, 1300)
			}
			sizes = append(sizes, 700, 1300, 1300, 1, 1400, 1400, 900)
			pkts := datagrams(sizes...)
			ws := a.wpool.Get().(*writeScratch)
			nmsg := a.fill(ws, pkts, unix.SizeofSockaddrInet4, a.gso())
			if !noGSO && nmsg >= len(pkts)/4 {
				t.Errorf("%d messages for %d datagrams: no GSO runs", nmsg, len(pkts))
			}
			a.wpool.Put(ws)
			n, err := a.write(pkts, to)
			if err != nil || n != len(pkts) {
				t.Fatalf("write: %d of %d, %v", n, len(pkts), err)
			}
			got := readN(t, b, len(pkts))
			for i := range pkts {
				if !bytes.Equal(got[i], pkts[i]) {
					t.Fatalf("datagram %d: %d bytes of %d, want %d of %d", i, len(got[i]), got[i][0], len(pkts[i]), pkts[i][0])
				}
			}
		})
	}
}

// A datagram that cannot be sent (too large) fails alone: those before
// and after it go, and the error and the count tell.
func TestBatchIOPartialWrite(t *testing.T) {
	a, b, to := udpPair(t, false)
	pkts := datagrams(1000, 1000, 70000, 1000, 1000, 500)
	n, err := a.write(pkts, to)
	if n != len(pkts)-1 || !errors.Is(err, unix.EMSGSIZE) {
		t.Fatalf("write: %d sent, err %v; want %d and EMSGSIZE", n, err, len(pkts)-1)
	}
	got := readN(t, b, len(pkts)-1)
	want := append(pkts[:2:2], pkts[3:]...)
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("datagram %d: %d bytes, want %d", i, len(got[i]), len(want[i]))
		}
	}
}

// A socket where GSO sends fail (EINVAL: here checksums are off) falls
// back to one datagram per message, without losing any.
func TestBatchIOGSOFallback(t *testing.T) {
	a, b, to := udpPair(t, false)
	if !a.gso() {
		t.Fatal("kernel without UDP GSO?")
	}
	if err := a.rc.Control(func(fd uintptr) {
		if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_NO_CHECK, 1); err != nil {
			t.Fatal(err)
		}
	}); err != nil {
		t.Fatal(err)
	}
	pkts := datagrams(1200, 1200, 1200, 1200, 800)
	n, err := a.write(pkts, to)
	if n != len(pkts) || err != nil {
		t.Fatalf("write: %d of %d, %v", n, len(pkts), err)
	}
	if a.gso() {
		t.Fatal("GSO still on after it failed")
	}
	got := readN(t, b, len(pkts))
	for i := range pkts {
		if !bytes.Equal(got[i], pkts[i]) {
			t.Fatalf("datagram %d differs", i)
		}
	}
}

func FuzzGROSegment(f *testing.F) {
	oob := make([]byte, unix.CmsgSpace(4))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level, h.Type = unix.IPPROTO_UDP, unix.UDP_GRO
	h.SetLen(unix.CmsgLen(4))
	oob[unix.CmsgLen(0)] = 0x14 // 1300, little endian
	oob[unix.CmsgLen(0)+1] = 0x05
	f.Add(oob)
	f.Add([]byte{})
	f.Add(make([]byte, 17))
	f.Fuzz(func(t *testing.T, b []byte) {
		if n := groSegment(b); n != 0 && len(b) < unix.CmsgLen(4) {
			t.Fatalf("segment %d from %d bytes", n, len(b))
		}
	})
}

// Meshes on IPv6 sockets (AF_INET6: ::1, and a dual-stack one reached at
// 127.0.0.1, its addresses v4-mapped) carry streams on the batch path.
func TestMeshStreamIPv6Batch(t *testing.T) {
	for _, tc := range []struct{ name, a, b string }{
		{"v6", "[::1]:0", "[::1]:0"},
		{"dual-stack", "127.0.0.1:0", "[::]:0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ao, bo := fastOpts(), fastOpts()
			ao.Listen, bo.Listen = tc.a, tc.b
			bo.Allow = allowAll
			ma := newTestMesh(t, "v6-a", ao)
			mb := newTestMesh(t, "v6-b", bo)
			if _, ok := mb.io.(*batchIO); !ok || !mb.io.(*batchIO).v6 {
				t.Fatalf("mesh b on %s: %T, want an AF_INET6 batchIO", tc.b, mb.io)
			}
			info := mb.LinkInfo()
			if tc.name == "dual-stack" {
				info.Paths = []Path{{Type: "udp4", IP: "127.0.0.1", Port: int(mb.Addr().Port())}}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if _, err := ma.Link(ctx, info); err != nil {
				t.Fatal(err)
			}
			for !mb.Up(ma.Hashname()) {
				if ctx.Err() != nil {
					t.Fatal("b never saw the link up")
				}
				time.Sleep(time.Millisecond)
			}
			oneWay(t, ma, mb, testData(1<<20, 9))
			mb.Handle(StreamType, nil)
			ma.Handle(StreamType, nil)
			oneWay(t, mb, ma, testData(1<<20, 10))
		})
	}
}
