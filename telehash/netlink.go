package telehash

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// Route netlink messages (Linux rtnetlink(7)), as the interface watcher
// receives them (ifwatch_linux.go): a datagram holds netlink messages,
// each a 16-byte header (length, type, flags, sequence, port id, in the
// host's byte order) and a body, padded to 4 bytes. The watcher only
// needs to know that a message about an address or a link came; the
// parser reads a little more (which interface, which address) for the
// log. It runs on every platform, so that it is fuzzed everywhere.

// Netlink message types (linux/netlink.h, linux/rtnetlink.h).
const (
	nlmsgNoop    = 1
	nlmsgError   = 2
	nlmsgDone    = 3
	nlmsgOverrun = 4
	rtmNewLink   = 16
	rtmDelLink   = 17
	rtmNewAddr   = 20
	rtmDelAddr   = 21
)

const (
	nlmsgHdrLen = 16
	ifaddrLen   = 8  // struct ifaddrmsg
	ifinfoLen   = 16 // struct ifinfomsg
	rtaHdrLen   = 4
	ifaAddress  = 1 // IFA_ADDRESS
	ifaLocal    = 2 // IFA_LOCAL
	afInet      = 2
	afInet6     = 10
)

// netlinkEvent is one message about the local addresses or links.
type netlinkEvent struct {
	Type  uint16     // rtmNewAddr, rtmDelAddr, rtmNewLink or rtmDelLink
	Index uint32     // the interface's index
	Addr  netip.Addr // the address of an address message (IFA_LOCAL, else IFA_ADDRESS), if any
}

func (e netlinkEvent) String() string {
	names := map[uint16]string{rtmNewAddr: "new address", rtmDelAddr: "address removed", rtmNewLink: "link changed", rtmDelLink: "link removed"}
	if e.Addr.IsValid() {
		return fmt.Sprintf("%s %v on interface %d", names[e.Type], e.Addr, e.Index)
	}
	return fmt.Sprintf("%s: interface %d", names[e.Type], e.Index)
}

// errNetlinkOverrun reports that the kernel dropped messages (the
// watcher then reads the addresses again, as for any change).
var errNetlinkOverrun = errors.New("netlink: messages lost")

// parseNetlink reads the address and link messages of a datagram;
// other messages are skipped. A malformed message ends the datagram
// with an error, the events before it kept.
func parseNetlink(b []byte) ([]netlinkEvent, error) {
	var out []netlinkEvent
	for n := 0; len(b) > 0; n++ {
		if len(b) < nlmsgHdrLen {
			return out, fmt.Errorf("netlink message %d: %d bytes, shorter than a header", n, len(b))
		}
		size := binary.NativeEndian.Uint32(b[0:4])
		typ := binary.NativeEndian.Uint16(b[4:6])
		if size < nlmsgHdrLen || uint64(size) > uint64(len(b)) {
			return out, fmt.Errorf("netlink message %d: length %d of %d bytes", n, size, len(b))
		}
		body := b[nlmsgHdrLen:size]
		b = b[min(nlAlign(int(size)), len(b)):]
		switch typ {
		case nlmsgOverrun:
			return out, errNetlinkOverrun
		case nlmsgDone:
			return out, nil
		case rtmNewAddr, rtmDelAddr:
			e, err := parseIfaddr(typ, body)
			if err != nil {
				return out, fmt.Errorf("netlink message %d: %w", n, err)
			}
			out = append(out, e)
		case rtmNewLink, rtmDelLink:
			if len(body) < ifinfoLen {
				return out, fmt.Errorf("netlink message %d: link message of %d bytes", n, len(body))
			}
			out = append(out, netlinkEvent{Type: typ, Index: binary.NativeEndian.Uint32(body[4:8])})
		}
	}
	return out, nil
}

// parseIfaddr reads an ifaddrmsg and its attributes.
func parseIfaddr(typ uint16, body []byte) (netlinkEvent, error) {
	if len(body) < ifaddrLen {
		return netlinkEvent{}, fmt.Errorf("address message of %d bytes", len(body))
	}
	e := netlinkEvent{Type: typ, Index: binary.NativeEndian.Uint32(body[4:8])}
	family := body[0]
	var local, addr netip.Addr
	for a := body[ifaddrLen:]; len(a) > 0; {
		if len(a) < rtaHdrLen {
			return e, fmt.Errorf("attribute of %d bytes", len(a))
		}
		size, at := int(binary.NativeEndian.Uint16(a[0:2])), binary.NativeEndian.Uint16(a[2:4])
		if size < rtaHdrLen || size > len(a) {
			return e, fmt.Errorf("attribute length %d of %d bytes", size, len(a))
		}
		v := a[rtaHdrLen:size]
		a = a[min(nlAlign(size), len(a)):]
		if at != ifaAddress && at != ifaLocal {
			continue
		}
		ip, ok := netip.AddrFromSlice(v)
		if !ok || (family == afInet) != ip.Is4() || (family == afInet6) != ip.Is6() {
			return e, fmt.Errorf("attribute %d: %d bytes is no address of family %d", at, len(v), family)
		}
		if at == ifaLocal {
			local = ip
		} else {
			addr = ip
		}
	}
	e.Addr = addr
	if local.IsValid() { // the local address of a point-to-point link
		e.Addr = local
	}
	return e, nil
}

// nlAlign rounds a netlink length up to 4 bytes.
func nlAlign(n int) int { return (n + 3) &^ 3 }
