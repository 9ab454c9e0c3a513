package telehash

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"reflect"
	"testing"
)

// nlMsg encodes a netlink message of type typ with body, padded.
func nlMsg(typ uint16, body []byte) []byte {
	b := make([]byte, nlmsgHdrLen, nlAlign(nlmsgHdrLen+len(body)))
	binary.NativeEndian.PutUint32(b[0:4], uint32(nlmsgHdrLen+len(body)))
	binary.NativeEndian.PutUint16(b[4:6], typ)
	b = append(b, body...)
	return b[:cap(b)]
}

// nlAddr encodes an address message's body: ifaddrmsg and attributes
// (type, value) in order.
func nlAddr(family uint8, index uint32, attrs ...any) []byte {
	b := make([]byte, ifaddrLen)
	b[0], b[1] = family, 24
	binary.NativeEndian.PutUint32(b[4:8], index)
	for i := 0; i+1 < len(attrs); i += 2 {
		v := attrs[i+1].([]byte)
		a := make([]byte, rtaHdrLen, nlAlign(rtaHdrLen+len(v)))
		binary.NativeEndian.PutUint16(a[0:2], uint16(rtaHdrLen+len(v)))
		binary.NativeEndian.PutUint16(a[2:4], attrs[i].(uint16))
		b = append(b, append(a, v...)[:cap(a)]...)
	}
	return b
}

// nlLink encodes a link message's body (ifinfomsg).
func nlLink(index uint32) []byte {
	b := make([]byte, ifinfoLen)
	binary.NativeEndian.PutUint32(b[4:8], index)
	return b
}

// encodeNetlink writes events as the kernel would (the parser's inverse).
func encodeNetlink(evs []netlinkEvent) []byte {
	var b []byte
	for _, e := range evs {
		switch {
		case e.Type == rtmNewLink || e.Type == rtmDelLink:
			b = append(b, nlMsg(e.Type, nlLink(e.Index))...)
		case e.Addr.Is4():
			b = append(b, nlMsg(e.Type, nlAddr(afInet, e.Index, uint16(ifaAddress), e.Addr.AsSlice()))...)
		case e.Addr.Is6():
			b = append(b, nlMsg(e.Type, nlAddr(afInet6, e.Index, uint16(ifaAddress), e.Addr.AsSlice()))...)
		default:
			b = append(b, nlMsg(e.Type, nlAddr(afInet, e.Index))...)
		}
	}
	return b
}

func TestParseNetlink(t *testing.T) {
	v4 := netip.MustParseAddr("192.0.2.7")
	peer := netip.MustParseAddr("192.0.2.1")
	v6 := netip.MustParseAddr("2001:db8::7")
	var dgram []byte
	dgram = append(dgram, nlMsg(rtmNewAddr, nlAddr(afInet, 3, uint16(8), []byte("eth0\x00"), uint16(ifaAddress), peer.AsSlice(), uint16(ifaLocal), v4.AsSlice()))...)
	dgram = append(dgram, nlMsg(24, []byte("a route: skipped"))...)
	dgram = append(dgram, nlMsg(rtmDelAddr, nlAddr(afInet6, 4, uint16(ifaAddress), v6.AsSlice()))...)
	dgram = append(dgram, nlMsg(rtmNewLink, nlLink(5))...)
	dgram = append(dgram, nlMsg(nlmsgDone, nil)...)
	dgram = append(dgram, nlMsg(rtmDelLink, nlLink(6))...) // after DONE: not read
	got, err := parseNetlink(dgram)
	want := []netlinkEvent{
		{Type: rtmNewAddr, Index: 3, Addr: v4}, // IFA_LOCAL over the peer's IFA_ADDRESS
		{Type: rtmDelAddr, Index: 4, Addr: v6},
		{Type: rtmNewLink, Index: 5},
	}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("parseNetlink = %v, %v; want %v", got, err, want)
	}

	bad := []struct {
		name string
		b    []byte
	}{
		{"short header", make([]byte, 10)},
		{"length past the end", func() []byte { b := nlMsg(rtmNewLink, nlLink(1)); binary.NativeEndian.PutUint32(b, 100); return b }()},
		{"length under a header", func() []byte { b := nlMsg(rtmNewLink, nlLink(1)); binary.NativeEndian.PutUint32(b, 4); return b }()},
		{"short link", nlMsg(rtmNewLink, []byte{1, 2, 3})},
		{"short address", nlMsg(rtmNewAddr, []byte{2, 24})},
		{"bad attribute length", nlMsg(rtmNewAddr, append(nlAddr(afInet, 1), 200, 0, 1, 0))},
		{"v6 bytes in a v4 message", nlMsg(rtmNewAddr, nlAddr(afInet, 1, uint16(ifaAddress), v6.AsSlice()))},
		{"3-byte address", nlMsg(rtmNewAddr, nlAddr(afInet, 1, uint16(ifaLocal), []byte{1, 2, 3}))},
	}
	for _, c := range bad {
		// A good event first: kept.
		b := append(nlMsg(rtmNewLink, nlLink(9)), c.b...)
		got, err := parseNetlink(b)
		if err == nil || len(got) != 1 || got[0].Index != 9 {
			t.Errorf("%s: parseNetlink = %v, %v; want the first event and an error", c.name, got, err)
		}
	}
	if _, err := parseNetlink(nlMsg(nlmsgOverrun, nil)); !errors.Is(err, errNetlinkOverrun) {
		t.Errorf("overrun: %v", err)
	}
}

// FuzzParseNetlink: the parser never panics, and what it reads encodes
// back to a datagram it reads the same.
func FuzzParseNetlink(f *testing.F) {
	f.Add(encodeNetlink([]netlinkEvent{{Type: rtmNewAddr, Index: 2, Addr: netip.MustParseAddr("10.0.0.1")},
		{Type: rtmDelAddr, Index: 2, Addr: netip.MustParseAddr("fe80::1")}, {Type: rtmNewLink, Index: 2}}))
	f.Add(nlMsg(rtmNewAddr, nlAddr(afInet, 3, uint16(ifaAddress), []byte{192, 0, 2, 1}, uint16(ifaLocal), []byte{192, 0, 2, 7})))
	f.Add(nlMsg(nlmsgError, make([]byte, 20)))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		evs, _ := parseNetlink(b)
		for _, e := range evs {
			if e.Type != rtmNewAddr && e.Type != rtmDelAddr && e.Type != rtmNewLink && e.Type != rtmDelLink {
				t.Fatalf("event of type %d", e.Type)
			}
			_ = e.String()
		}
		again, err := parseNetlink(encodeNetlink(evs))
		if err != nil || len(again) != len(evs) || (len(evs) > 0 && !reflect.DeepEqual(again, evs)) {
			t.Fatalf("re-encoded %v: read %v, %v", evs, again, err)
		}
	})
}
