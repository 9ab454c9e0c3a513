//go:build linux

package telehash

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Batch sizes. A GRO read buffer holds up to 64 KiB of coalesced
// datagrams, so fewer of them are read at once.
const (
	readBatch    = 32      // datagrams per recvmmsg without GRO
	groBatch     = 8       // buffers per recvmmsg with GRO
	groBufSize   = 1 << 16 // one GRO buffer: the largest UDP payload
	writeBatch   = 64      // messages per sendmmsg
	maxGSOSegs   = 64      // UDP_MAX_SEGMENTS of older kernels (newer: 128)
	maxGSOBytes  = 65000   // below the 65507 bytes of an IPv4 UDP payload
	oobSize      = 64      // control message space per message
	sockaddrSize = unix.SizeofSockaddrInet6
)

// mmsghdr is struct mmsghdr of <sys/socket.h>.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
}

// batchIO is datagramIO over recvmmsg/sendmmsg with UDP GSO and GRO when
// the kernel has them (Linux 4.18 and 5.0); without, it still batches.
type batchIO struct {
	conn  *net.UDPConn
	rc    syscall.RawConn
	v6    bool // an AF_INET6 socket: destinations as IPv6 (v4-mapped)
	gsoOn atomic.Bool
	gro   bool

	// read state, only the read loop uses it
	rbufs  [][]byte
	rhdrs  []mmsghdr
	riovs  []unix.Iovec
	rnames []unix.RawSockaddrInet6
	roob   []byte
	seg    []byte // a GRO segment copied out, with cloakSpare spare bytes
	zones  map[uint32]string

	wpool sync.Pool // *writeScratch
}

// writeScratch holds one write's system call structures.
type writeScratch struct {
	hdrs []mmsghdr
	iovs []unix.Iovec
	oob  []byte
	segs []int // datagrams in each message
	name unix.RawSockaddrInet6
}

// newDatagramIO returns the batching datagramIO of conn, or plainIO when
// plain is set or the socket cannot be reached.
func newDatagramIO(conn *net.UDPConn, plain bool, noGSO bool) datagramIO {
	if plain {
		return newPlainIO(conn)
	}
	rc, err := conn.SyscallConn()
	if err != nil {
		return newPlainIO(conn)
	}
	b := &batchIO{conn: conn, rc: rc, zones: map[uint32]string{}}
	var serr error
	err = rc.Control(func(fd uintptr) {
		var dom int
		if dom, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN); serr != nil {
			return
		}
		b.v6 = dom == unix.AF_INET6
		if noGSO {
			return
		}
		// Both or neither: GRO alone would only help foreign GSO senders.
		if _, err := unix.GetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_SEGMENT); err == nil {
			b.gsoOn.Store(true)
		}
		if unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_GRO, 1) == nil {
			b.gro = true
		}
	})
	if err != nil || serr != nil {
		return newPlainIO(conn)
	}
	n, size := readBatch, maxReadDatagram+1+cloakSpare
	if b.gro {
		n, size = groBatch, groBufSize
		b.seg = make([]byte, maxReadDatagram+1+cloakSpare)
	}
	b.rbufs = make([][]byte, n)
	b.rhdrs = make([]mmsghdr, n)
	b.riovs = make([]unix.Iovec, n)
	b.rnames = make([]unix.RawSockaddrInet6, n)
	b.roob = make([]byte, n*oobSize)
	for i := range b.rbufs {
		b.rbufs[i] = make([]byte, size)
	}
	b.wpool.New = func() any {
		return &writeScratch{hdrs: make([]mmsghdr, writeBatch), iovs: make([]unix.Iovec, 0, writeBatch*maxGSOSegs),
			oob: make([]byte, writeBatch*oobSize), segs: make([]int, 0, writeBatch)}
	}
	return b
}

func (b *batchIO) gso() bool { return b.gsoOn.Load() }

// read implements datagramIO with one recvmmsg.
func (b *batchIO) read(fn func([]byte, netip.AddrPort)) error {
	for i := range b.rhdrs {
		buf := b.rbufs[i]
		if !b.gro {
			buf = buf[:maxReadDatagram+1]
		}
		b.riovs[i].Base = &buf[0]
		b.riovs[i].SetLen(len(buf))
		h := &b.rhdrs[i].hdr
		h.Name = (*byte)(unsafe.Pointer(&b.rnames[i]))
		h.Namelen = sockaddrSize
		h.Iov = &b.riovs[i]
		h.SetIovlen(1)
		h.Control = &b.roob[i*oobSize]
		h.SetControllen(oobSize)
		h.Flags = 0
		b.rhdrs[i].n = 0
	}
	var n int
	var errno syscall.Errno
	err := b.rc.Read(func(fd uintptr) bool {
		r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.rhdrs[0])), uintptr(len(b.rhdrs)), 0, 0, 0)
		if e == unix.EAGAIN || e == unix.EINTR {
			return false
		}
		n, errno = int(r), e
		return true
	})
	runtime.KeepAlive(b.rbufs)
	if err != nil {
		return err
	}
	if errno != 0 {
		return &net.OpError{Op: "recvmmsg", Net: "udp", Err: errno}
	}
	for i := range n {
		h := &b.rhdrs[i]
		from := b.sockaddr(&b.rnames[i])
		data := b.rbufs[i][:h.n]
		seg := 0
		if b.gro {
			seg = groSegment(b.roob[i*oobSize : i*oobSize+int(h.hdr.Controllen)])
		}
		if seg <= 0 || seg >= len(data) {
			if b.gro && len(data) <= maxReadDatagram {
				// the GRO buffer has no spare capacity to uncloak in
				data = append(b.seg[:0], data...)
			}
			fn(data, from)
			continue
		}
		for off := 0; off < len(data); off += seg {
			d := data[off:min(off+seg, len(data))]
			if len(d) > maxReadDatagram {
				fn(d, from) // dropped by the caller as too long
				continue
			}
			fn(append(b.seg[:0], d...), from)
		}
	}
	return nil
}

// groSegment returns the UDP_GRO segment size of a control message
// buffer, or 0.
func groSegment(oob []byte) int {
	for len(oob) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < unix.SizeofCmsghdr || l > len(oob) {
			return 0
		}
		if h.Level == unix.IPPROTO_UDP && h.Type == unix.UDP_GRO && l >= unix.CmsgLen(4) {
			return int(*(*int32)(unsafe.Pointer(&oob[unix.CmsgLen(0)])))
		}
		oob = oob[min(unix.CmsgSpace(l-unix.CmsgLen(0)), len(oob)):]
	}
	return 0
}

// sockaddr converts a received source address as the net package does
// (an AF_INET6 socket's IPv4 sources stay v4-mapped).
func (b *batchIO) sockaddr(sa *unix.RawSockaddrInet6) netip.AddrPort {
	switch sa.Family {
	case unix.AF_INET:
		s4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&s4.Port))[:])
		return netip.AddrPortFrom(netip.AddrFrom4(s4.Addr), port)
	case unix.AF_INET6:
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
		a := netip.AddrFrom16(sa.Addr)
		if sa.Scope_id != 0 {
			a = a.WithZone(b.zone(sa.Scope_id))
		}
		return netip.AddrPortFrom(a, port)
	}
	return netip.AddrPort{}
}

// zone names an interface index as net does (its name, else the number).
func (b *batchIO) zone(idx uint32) string {
	if z, ok := b.zones[idx]; ok {
		return z
	}
	z := strconv.Itoa(int(idx))
	if ifi, err := net.InterfaceByIndex(int(idx)); err == nil {
		z = ifi.Name
	}
	if len(b.zones) < 64 {
		b.zones[idx] = z
	}
	return z
}

// setName encodes to as the socket's address family.
func (b *batchIO) setName(ws *writeScratch, to netip.AddrPort) (uint32, bool) {
	a := to.Addr()
	if !b.v6 {
		a = a.Unmap()
		if !a.Is4() {
			return 0, false
		}
		s4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(&ws.name))
		*s4 = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: a.As4()}
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&s4.Port))[:], to.Port())
		return unix.SizeofSockaddrInet4, true
	}
	if a.Zone() != "" {
		return 0, false // rare: let net resolve the zone
	}
	ws.name = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: a.As16()}
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&ws.name.Port))[:], to.Port())
	return unix.SizeofSockaddrInet6, true
}

// write implements datagramIO with sendmmsg, one GSO message per run of
// equal-size datagrams (the last may be shorter) when GSO is on.
func (b *batchIO) write(pkts [][]byte, to netip.AddrPort) (int, error) {
	if len(pkts) == 0 {
		return 0, nil
	}
	ws := b.wpool.Get().(*writeScratch)
	defer b.wpool.Put(ws)
	namelen, ok := b.setName(ws, to)
	if !ok {
		return writeEach(b.conn, pkts, to)
	}
	sent := 0
	var first error
	for len(pkts) > 0 {
		gso := b.gso()
		nmsg := b.fill(ws, pkts, namelen, gso)
		n, err := b.sendmmsg(ws.hdrs[:nmsg])
		for _, k := range ws.segs[:n] {
			sent += k
			pkts = pkts[k:]
		}
		if err == nil {
			continue
		}
		if _, ok := err.(syscall.Errno); !ok {
			return sent, err // the socket is closed
		}
		if gso && ws.segs[n] > 1 && (errors.Is(err, unix.EIO) || errors.Is(err, unix.EINVAL)) {
			// No GSO on this path (EIO: no checksum offload; EINVAL:
			// a segment above the route's MTU): send datagrams one by one.
			b.gsoOn.Store(false)
			continue
		}
		if first == nil {
			first = &net.OpError{Op: "sendmmsg", Net: "udp", Addr: net.UDPAddrFromAddrPort(to), Err: err}
		}
		pkts = pkts[ws.segs[n]:] // skip the message that failed
	}
	runtime.KeepAlive(ws)
	return sent, first
}

// fill builds up to writeBatch messages from pkts into ws and returns
// how many; ws.segs holds each message's datagram count.
func (b *batchIO) fill(ws *writeScratch, pkts [][]byte, namelen uint32, gso bool) int {
	ws.iovs, ws.segs = ws.iovs[:0], ws.segs[:0]
	clear(ws.oob)
	nmsg := 0
	for i := 0; i < len(pkts) && nmsg < writeBatch; nmsg++ {
		k := 1
		if gso {
			size, total := len(pkts[i]), len(pkts[i])
			for i+k < len(pkts) && k < maxGSOSegs && total+len(pkts[i+k]) <= maxGSOBytes && len(pkts[i+k]) <= size {
				total += len(pkts[i+k])
				k++
				if len(pkts[i+k-1]) < size {
					break // a shorter datagram ends a GSO run
				}
			}
		}
		iov0 := len(ws.iovs)
		for _, p := range pkts[i : i+k] {
			var v unix.Iovec
			if len(p) > 0 {
				v.Base = &p[0]
			}
			v.SetLen(len(p))
			ws.iovs = append(ws.iovs, v)
		}
		h := &ws.hdrs[nmsg]
		*h = mmsghdr{}
		h.hdr.Name = (*byte)(unsafe.Pointer(&ws.name))
		h.hdr.Namelen = namelen
		h.hdr.Iov = &ws.iovs[iov0]
		h.hdr.SetIovlen(k)
		if k > 1 {
			oob := ws.oob[nmsg*oobSize:]
			c := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
			c.Level, c.Type = unix.IPPROTO_UDP, unix.UDP_SEGMENT
			c.SetLen(unix.CmsgLen(2))
			*(*uint16)(unsafe.Pointer(&oob[unix.CmsgLen(0)])) = uint16(len(pkts[i]))
			h.hdr.Control = &oob[0]
			h.hdr.SetControllen(unix.CmsgSpace(2))
		}
		ws.segs = append(ws.segs, k)
		i += k
	}
	return nmsg
}

// sendmmsg sends msgs and returns how many were sent; err is the error of
// msgs[n] when n < len(msgs).
func (b *batchIO) sendmmsg(msgs []mmsghdr) (int, error) {
	sent := 0
	var errno syscall.Errno
	err := b.rc.Write(func(fd uintptr) bool {
		for sent < len(msgs) {
			r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&msgs[sent])), uintptr(len(msgs)-sent), 0, 0, 0)
			switch {
			case e == unix.EAGAIN:
				return false // wait until writable
			case e == unix.EINTR:
				continue
			case e != 0:
				errno = e
				return true
			}
			sent += int(r)
		}
		return true
	})
	if err != nil {
		return sent, err
	}
	if errno != 0 {
		return sent, errno
	}
	return sent, nil
}
