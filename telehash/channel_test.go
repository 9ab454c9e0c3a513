package telehash

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

func TestChannelPacketRoundTrip(t *testing.T) {
	tests := []ChannelPacket{
		{C: 1, Type: "stream", Seq: 1, Body: []byte("data")},
		{C: 2, Ack: 0, Miss: []uint32{50}},
		{C: 3, Seq: 7, Ack: 5, Miss: []uint32{1, 2, 45}, End: true},
		{C: 4294967295, Err: "timeout"},
		{C: 5, Type: "path", Extra: map[string]json.RawMessage{"paths": json.RawMessage(`[{"type":"udp4","ip":"127.0.0.1","port":42424}]`)}},
	}
	for _, cp := range tests {
		b, err := cp.EncodeChannelInner()
		if err != nil {
			t.Fatalf("%v: %v", &cp, err)
		}
		got, err := DecodeChannelInner(b)
		if err != nil {
			t.Fatalf("%v: decode: %v", &cp, err)
		}
		if len(got.Body) == 0 {
			got.Body = nil
		}
		if !reflect.DeepEqual(*got, cp) {
			t.Fatalf("round trip:\n got %v %q\nwant %v %q", got, got.Extra, &cp, cp.Extra)
		}
	}
}

func TestChannelPacketWire(t *testing.T) {
	// telehash-js's first reliable reply: ack 0 must be present with miss.
	b, _ := (&ChannelPacket{C: 1, Miss: []uint32{50}}).EncodeChannelInner()
	p, _ := DecodePacket(b)
	if string(p.Head) != `{"ack":0,"c":1,"miss":[50]}` {
		t.Fatalf("head %s", p.Head)
	}
	b, _ = (&ChannelPacket{C: 9}).EncodeChannelInner()
	if p, _ = DecodePacket(b); string(p.Head) != `{"c":9}` {
		t.Fatalf("head %s", p.Head)
	}
	s := (&ChannelPacket{C: 1, Type: "t", Seq: 1, Ack: 2, Miss: []uint32{3}, End: true, Err: "e", Body: []byte{1}}).String()
	if s != `c=1 type="t" seq=1 ack=2 miss=[3] end err="e" body=1` {
		t.Fatalf("String %s", s)
	}
}

func TestChannelPacketErrors(t *testing.T) {
	if _, err := (&ChannelPacket{}).EncodeChannelInner(); !errors.Is(err, ErrMalformed) {
		t.Fatalf("c=0: %v", err)
	}
	if _, err := (&ChannelPacket{C: 1, Extra: map[string]json.RawMessage{"seq": json.RawMessage("1")}}).EncodeChannelInner(); !errors.Is(err, ErrMalformed) {
		t.Fatalf("reserved extra: %v", err)
	}
	if _, err := (&ChannelPacket{C: 1, Extra: map[string]json.RawMessage{"x": json.RawMessage("{")}}).EncodeChannelInner(); !errors.Is(err, ErrMalformed) {
		t.Fatalf("bad extra: %v", err)
	}
	for _, head := range []string{
		`{"type":"x"}`, `{"c":0}`, `{"c":-1}`, `{"c":1.5}`, `{"c":"1"}`, `{"c":4294967296}`,
		`{"c":1,"seq":-1}`, `{"c":1,"ack":"1"}`, `{"c":1,"miss":5}`, `{"c":1,"miss":null}`,
		`{"c":1,"miss":[1,-2]}`, `{"c":1,"end":1}`, `{"c":1,"err":5}`, `{"c":1,"err":null}`, `{"c":1,"type":[]}`,
	} {
		b, err := EncodePacket([]byte(head), nil)
		if err != nil {
			t.Fatalf("%s: %v", head, err)
		}
		if _, err := DecodeChannelInner(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", head, err)
		}
	}
	if _, err := DecodeChannelInner([]byte{0, 0, 1}); !errors.Is(err, ErrMalformed) {
		t.Errorf("no head: %v", err)
	}
	miss := bytes.Repeat([]byte("1,"), MaxMiss)
	head := append(append([]byte(`{"c":1,"miss":[`), miss...), "1]}"...)
	b, _ := EncodePacket(head, nil)
	if _, err := DecodeChannelInner(b); !errors.Is(err, ErrMalformed) {
		t.Errorf("long miss: %v", err)
	}
}

func FuzzDecodeChannelInner(f *testing.F) {
	for _, cp := range []ChannelPacket{
		{C: 1, Type: "stream", Seq: 1, Body: []byte("data")},
		{C: 2, Miss: []uint32{50}},
		{C: 3, End: true, Err: "x", Extra: map[string]json.RawMessage{"k": json.RawMessage(`{"a":[1]}`)}},
	} {
		b, _ := cp.EncodeChannelInner()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		cp, err := DecodeChannelInner(b)
		if err != nil {
			return
		}
		if cp.C == 0 || len(cp.Miss) > MaxMiss {
			t.Fatalf("accepted %v", cp)
		}
		// Whatever decodes must re-encode and decode to the same packet.
		enc, err := cp.EncodeChannelInner()
		if err != nil {
			t.Fatalf("re-encode %v: %v", cp, err)
		}
		again, err := DecodeChannelInner(enc)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if again.String() != cp.String() || !bytes.Equal(again.Body, cp.Body) || len(again.Extra) != len(cp.Extra) {
			t.Fatalf("re-decode %v != %v", again, cp)
		}
	})
}
