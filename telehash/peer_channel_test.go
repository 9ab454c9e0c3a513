package telehash

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

const (
	hnA = Hashname("27ywx5e5ylzxfzxrhptowvwntqrd3jhksyxrfkzi6jfn64d3lwxa")
	hnB = Hashname("nzf4f6j7ylv53z3m4egrwltv2t2yks4rtpaimeg3avwqsoshqxba")
)

// handshakeLOB is a LOB shaped like a 3a handshake message.
var handshakeLOB = append([]byte{0, 1, 0x3a}, bytes.Repeat([]byte{7}, 80)...)

// seedInner returns the inner packet bytes of cp with channel id 3.
func seedInner(t testing.TB, cp *ChannelPacket) []byte {
	cp.C = 3
	b, err := cp.EncodeChannelInner()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPeerRequestRoundTrip(t *testing.T) {
	req := &peerRequest{Peer: hnB, Body: handshakeLOB}
	cp, err := DecodeChannelInner(seedInner(t, req.packet()))
	if err != nil {
		t.Fatal(err)
	}
	if cp.Type != PeerType || string(cp.Extra["peer"]) != `"`+string(hnB)+`"` {
		t.Fatalf("open packet %v", cp)
	}
	got, err := parsePeerRequest(cp)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, req) {
		t.Fatalf("round trip: %+v, want %+v", got, req)
	}
	for name, extra := range map[string]string{
		"no peer":    `{}`,
		"number":     `{"peer":42}`,
		"bad base32": `{"peer":"!!"}`,
		"short":      `{"peer":"aaaa"}`,
	} {
		var e map[string]json.RawMessage
		json.Unmarshal([]byte(extra), &e)
		if _, err := parsePeerRequest(&ChannelPacket{Type: PeerType, Extra: e, Body: handshakeLOB}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := parsePeerRequest(&ChannelPacket{Extra: req.packet().Extra, Body: []byte{0, 9}}); err == nil {
		t.Error("body that is not a LOB accepted")
	}
}

func TestConnectRequestRoundTrip(t *testing.T) {
	req := &connectRequest{Peer: hnA, Paths: []Path{{Type: "udp4", IP: "192.0.2.1", Port: 4242},
		{Type: "udp6", IP: "2001:db8::1", Port: 1}}, Body: handshakeLOB}
	cp, err := DecodeChannelInner(seedInner(t, req.packet()))
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseConnectRequest(cp)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, req) {
		t.Fatalf("round trip: %+v, want %+v", got, req)
	}
	// telehash-js's connect: peer, no paths; bad paths are left out.
	var e map[string]json.RawMessage
	json.Unmarshal([]byte(`{"peer":"`+string(hnA)+`","paths":[{"type":"udp4","ip":"0.0.0.0","port":1},
		{"type":"http","url":"x"},{"type":"udp4","ip":"10.0.0.1","port":70000},{"type":"udp4","ip":"10.0.0.1","port":9}]}`), &e)
	got, err = parseConnectRequest(&ChannelPacket{Type: ConnectType, Extra: e, Body: handshakeLOB})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Paths) != 1 || got.Paths[0].IP != "10.0.0.1" {
		t.Fatalf("paths %+v, want only 10.0.0.1:9", got.Paths)
	}
	json.Unmarshal([]byte(`{"paths":{"type":"udp4"}}`), &e)
	if _, err := parseConnectRequest(&ChannelPacket{Extra: e, Body: handshakeLOB}); err == nil {
		t.Error("paths that is not an array accepted")
	}
}

// fuzzRoundTrip checks that what parse accepts encodes to a packet that
// parses to the same value.
func fuzzRoundTrip[T any](t *testing.T, b []byte, parse func(*ChannelPacket) (T, error), packet func(T) *ChannelPacket) {
	cp, err := DecodeChannelInner(b)
	if err != nil {
		return
	}
	v, err := parse(cp)
	if err != nil {
		return
	}
	out := packet(v)
	out.C = 5
	enc, err := out.EncodeChannelInner()
	if err != nil {
		t.Fatalf("encode %+v: %v", v, err)
	}
	cp2, err := DecodeChannelInner(enc)
	if err != nil {
		t.Fatalf("decode own encoding: %v", err)
	}
	v2, err := parse(cp2)
	if err != nil {
		t.Fatalf("parse own encoding: %v", err)
	}
	if !reflect.DeepEqual(v, v2) {
		t.Fatalf("round trip: %+v then %+v", v, v2)
	}
}

func FuzzPeerRequest(f *testing.F) {
	f.Add(seedInner(f, (&peerRequest{Peer: hnB, Body: handshakeLOB}).packet()))
	f.Add([]byte(`{"c":1,"type":"peer","peer":""}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzRoundTrip(t, b, parsePeerRequest, (*peerRequest).packet)
	})
}

func FuzzConnectRequest(f *testing.F) {
	f.Add(seedInner(f, (&connectRequest{Peer: hnA, Paths: []Path{{Type: "udp4", IP: "127.0.0.1", Port: 1}},
		Body: handshakeLOB}).packet()))
	f.Add(seedInner(f, (&connectRequest{Body: handshakeLOB}).packet()))
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzRoundTrip(t, b, parseConnectRequest, (*connectRequest).packet)
	})
}
