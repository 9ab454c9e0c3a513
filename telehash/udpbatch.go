package telehash

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
)

// datagramIO is how a Mesh reads and writes its UDP socket. On Linux it
// batches: recvmmsg and sendmmsg move many datagrams per system call,
// UDP GSO (UDP_SEGMENT) sends a run of equal-size datagrams to one
// destination as one buffer and UDP GRO receives such runs as one
// (udpbatch_linux.go); elsewhere, and when MeshOptions.NoBatchIO is set,
// it is one system call per datagram (plainIO).
type datagramIO interface {
	// read waits for datagrams and calls fn for each one read, in
	// order; b is only valid during fn and has cloakSpare bytes of
	// spare capacity (uncloakInPlace may overwrite them). A datagram
	// longer than maxReadDatagram is passed with some length above it.
	read(fn func(b []byte, from netip.AddrPort)) error
	// write sends the datagrams to one destination, in order; it goes on
	// past a datagram that fails, and returns how many were sent and the
	// first error.
	write(pkts [][]byte, to netip.AddrPort) (int, error)
	// gso reports whether write sends runs of equal-size datagrams as
	// one buffer, so that senders gain by equalizing sizes (padInners).
	gso() bool
}

// plainIO is datagramIO with one system call per datagram.
type plainIO struct {
	conn *net.UDPConn
	buf  []byte // read buffer, only the read loop uses it
}

func newPlainIO(conn *net.UDPConn) *plainIO {
	return &plainIO{conn: conn, buf: make([]byte, maxReadDatagram+1+cloakSpare)}
}

func (p *plainIO) read(fn func([]byte, netip.AddrPort)) error {
	n, from, err := p.conn.ReadFromUDPAddrPort(p.buf[:maxReadDatagram+1])
	if err != nil {
		return err
	}
	fn(p.buf[:n], from)
	return nil
}

func (p *plainIO) write(pkts [][]byte, to netip.AddrPort) (int, error) {
	return writeEach(p.conn, pkts, to)
}

// writeEach sends the datagrams one system call each.
func writeEach(conn *net.UDPConn, pkts [][]byte, to netip.AddrPort) (int, error) {
	sent := 0
	var first error
	for _, b := range pkts {
		if _, err := conn.WriteToUDPAddrPort(b, to); err != nil {
			if first == nil {
				first = err
			}
			continue
		}
		sent++
	}
	return sent, first
}

func (p *plainIO) gso() bool { return false }

// maxPad is the most whitespace padInners adds to one inner packet's
// head to make it as long as its neighbours.
const maxPad = 32

// padInners makes runs of inner packets of nearly equal length (within
// maxPad bytes) exactly equal by padding the shorter ones' JSON heads
// with spaces before the closing brace, which every JSON parser skips
// (telehash-js: JSON.parse). A GSO write sends such a run as one buffer
// (only its last datagram may be shorter). Each inner must be a LOB
// packet with a JSON head, as appendInner makes; others end a run.
func padInners(inners [][]byte) {
	for i := 0; i < len(inners); {
		lo, hi := len(inners[i]), len(inners[i])
		j := i + 1
		for ; j < len(inners); j++ {
			n := len(inners[j])
			if max(hi, n)-min(lo, n) > maxPad {
				break
			}
			lo, hi = min(lo, n), max(hi, n)
		}
		for k := i; k < j && lo < hi; k++ {
			if b, ok := padInner(inners[k], hi-len(inners[k])); ok {
				inners[k] = b
			}
		}
		i = j
	}
}

// padInner inserts n spaces before the closing brace of inner's JSON
// head, growing it in place when its capacity allows.
func padInner(inner []byte, n int) ([]byte, bool) {
	if n == 0 {
		return inner, true
	}
	if len(inner) < 2 {
		return inner, false
	}
	hl := int(binary.BigEndian.Uint16(inner))
	end := 2 + hl // the byte after '}'
	if hl < minJSONHead || end > len(inner) || inner[end-1] != '}' || hl+n > 0xffff {
		return inner, false
	}
	old := len(inner)
	inner = append(inner, make([]byte, n)...)
	copy(inner[end-1+n:], inner[end-1:old])
	for k := end - 1; k < end-1+n; k++ {
		inner[k] = ' '
	}
	binary.BigEndian.PutUint16(inner, uint16(hl+n))
	return inner, true
}

// sendBatch sends datagrams over one path: batched on the UDP socket,
// one by one over a Pipe.
func (m *Mesh) sendBatch(pkts [][]byte, to pathAddr) error {
	if to.pipe != nil {
		var first error
		for _, b := range pkts {
			if err := m.send(b, to); err != nil && first == nil {
				first = err
			}
		}
		return first
	}
	if !to.udp.IsValid() {
		return fmt.Errorf("telehash: no path to peer")
	}
	n, err := m.io.write(pkts, to.udp)
	m.stats.sent.Add(uint64(n))
	if err != nil {
		return fmt.Errorf("telehash: send: %w", err)
	}
	return nil
}
