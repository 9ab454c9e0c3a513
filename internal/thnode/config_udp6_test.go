package thnode

import (
	"net"
	"net/netip"
	"reflect"
	"testing"
)

func TestListenForUDP6(t *testing.T) {
	ap := netip.MustParseAddrPort
	for _, tc := range []struct {
		paths []netip.AddrPort
		want  string
	}{
		{nil, "127.0.0.1:0"},
		{[]netip.AddrPort{ap("127.0.0.1:9")}, "127.0.0.1:0"},
		{[]netip.AddrPort{ap("127.0.0.1:9"), ap("[::1]:9")}, "127.0.0.1:0"},
		{[]netip.AddrPort{ap("[::1]:9")}, "[::1]:0"},
		{[]netip.AddrPort{ap("192.0.2.1:9")}, "0.0.0.0:0"},
		{[]netip.AddrPort{ap("192.0.2.1:9"), ap("[2001:db8::1]:9")}, "[::]:0"},
		{[]netip.AddrPort{ap("127.0.0.1:9"), ap("[2001:db8::1]:9")}, "[::]:0"},
	} {
		if got := listenFor(tc.paths); got != tc.want {
			t.Errorf("listenFor(%v) = %s, want %s", tc.paths, got, tc.want)
		}
	}
	bob := thURL(identity(t))
	if l, _ := listenAddr(config(t, "remote.bob.url", bob+"&udp6=[2001:db8::1]:9")); l != "[::]:0" {
		t.Errorf("udp6 remote: listen %s", l)
	}
}

func TestListenPathsUDP6(t *testing.T) {
	got, err := ListenPaths("[::1]:4242")
	if err != nil || !reflect.DeepEqual(got, []netip.AddrPort{netip.MustParseAddrPort("[::1]:4242")}) {
		t.Fatalf("[::1]:4242: %v %v", got, err)
	}
	if _, err := ListenPaths("[fe80::1%lo]:4242"); err == nil {
		t.Error("a zoned address was accepted")
	}
	ifaddr := func(s string) net.Addr {
		ip, n, err := net.ParseCIDR(s)
		if err != nil {
			t.Fatal(err)
		}
		n.IP = ip
		return n
	}
	addrs := []net.Addr{ifaddr("127.0.0.1/8"), ifaddr("10.1.2.3/24"), ifaddr("::1/128"), ifaddr("fe80::1/64"), ifaddr("fd00::2/64")}
	v4 := interfacePaths(addrs, false, 7)
	want4 := []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:7"), netip.MustParseAddrPort("10.1.2.3:7")}
	if !reflect.DeepEqual(v4, want4) {
		t.Errorf("v4 only: %v, want %v", v4, want4)
	}
	all := interfacePaths(addrs, true, 7)
	want := append(want4, netip.MustParseAddrPort("[::1]:7"), netip.MustParseAddrPort("[fd00::2]:7"))
	if !reflect.DeepEqual(all, want) {
		t.Errorf("dual stack: %v, want %v", all, want)
	}
	// The dual-stack listener's URLs: loopback together, then each other
	// IPv4 address with the IPv6 ones.
	base := Addr{Hashname: identity(t).Hashname()}
	var urls []string
	for _, a := range AdvertisedAddrs(base, all) {
		urls = append(urls, a.String()[len(Scheme)+52:])
	}
	wantURLs := []string{"?udp4=127.0.0.1:7&udp6=[::1]:7", "?udp4=10.1.2.3:7&udp6=[fd00::2]:7"}
	if !reflect.DeepEqual(urls, wantURLs) {
		t.Errorf("advertised %q, want %q", urls, wantURLs)
	}
	if a := AdvertisedAddrs(base, nil); len(a) != 1 || len(a[0].Paths) != 0 {
		t.Errorf("no paths: %v", a)
	}
}
