package telehash

import (
	"bytes"
	"errors"
	"testing"
)

func TestDecodePacket(t *testing.T) {
	tests := []struct {
		name       string
		in         []byte
		head, body []byte
		json       bool
		err        error
	}{
		{"empty head", []byte{0, 0}, nil, []byte{}, false, nil},
		{"body only", []byte{0, 0, 9, 8}, nil, []byte{9, 8}, false, nil},
		{"csid head", []byte{0, 1, 0x3a, 7}, []byte{0x3a}, []byte{7}, false, nil},
		{"binary 6", append([]byte{0, 6}, "abcdef"...), []byte("abcdef"), []byte{}, false, nil},
		{"json", append([]byte{0, 8}, `{"a":1}x`...), []byte(`{"a":1}x`), nil, false, ErrMalformed},
		{"json ok", append([]byte{0, 7}, `{"a":1}z`...), []byte(`{"a":1}`), []byte("z"), true, nil},
		{"json spaces", append([]byte{0, 9}, ` {"a":1} `...), []byte(` {"a":1} `), []byte{}, true, nil},
		{"json array", append([]byte{0, 7}, `[1,2,3]`...), nil, nil, false, ErrMalformed},
		{"json string", append([]byte{0, 9}, `"abcdefg"`...), nil, nil, false, ErrMalformed},
		{"bad json", append([]byte{0, 7}, `{"a":}}`...), nil, nil, false, ErrMalformed},
		{"short", []byte{0}, nil, nil, false, ErrMalformed},
		{"nil", nil, nil, nil, false, ErrMalformed},
		{"length too big", []byte{0, 3, 1, 2}, nil, nil, false, ErrMalformed},
		{"length max", []byte{0xff, 0xff, 1}, nil, nil, false, ErrMalformed},
		{"too large", make([]byte, MaxPacketSize+1), nil, nil, false, ErrTooLarge},
	}
	for _, tt := range tests {
		p, err := DecodePacket(tt.in)
		if tt.err != nil {
			if !errors.Is(err, tt.err) {
				t.Errorf("%s: err = %v, want %v", tt.name, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if !bytes.Equal(p.Head, tt.head) || !bytes.Equal(p.Body, tt.body) || p.IsJSON() != tt.json {
			t.Errorf("%s: head %q body %q json %v", tt.name, p.Head, p.Body, p.IsJSON())
		}
		if (p.Head == nil) != (len(tt.head) == 0) {
			t.Errorf("%s: head nil-ness", tt.name)
		}
	}
}

func TestEncodePacketRoundTrip(t *testing.T) {
	tests := []struct{ head, body []byte }{
		{nil, nil},
		{nil, []byte("body")},
		{[]byte{0x3a}, []byte("x")},
		{[]byte(`{"type":"link","at":1}`), []byte{0, 1, 2}},
		{[]byte("123456"), nil},
	}
	for _, tt := range tests {
		b, err := EncodePacket(tt.head, tt.body)
		if err != nil {
			t.Fatalf("encode %q: %v", tt.head, err)
		}
		p, err := DecodePacket(b)
		if err != nil || !bytes.Equal(p.Head, tt.head) || !bytes.Equal(p.Body, tt.body) {
			t.Fatalf("round trip %q %q: %q %q %v", tt.head, tt.body, p.Head, p.Body, err)
		}
		again, _ := p.Encode()
		if !bytes.Equal(again, b) {
			t.Fatalf("re-encode differs")
		}
	}
}

func TestEncodePacketErrors(t *testing.T) {
	if _, err := EncodePacket([]byte("not json"), nil); !errors.Is(err, ErrMalformed) {
		t.Errorf("non-JSON head: %v", err)
	}
	if _, err := EncodePacket(nil, make([]byte, MaxPacketSize)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("big body: %v", err)
	}
	if _, err := EncodePacket(make([]byte, 0x10000), nil); !errors.Is(err, ErrTooLarge) {
		t.Errorf("big head: %v", err)
	}
	if _, err := EncodeJSONPacket(func() {}, nil); err == nil {
		t.Errorf("unmarshalable value accepted")
	}
}

func TestEncodeJSONPacket(t *testing.T) {
	// Short JSON is sent without head, as telehash-js lob.encode does.
	b, err := EncodeJSONPacket(map[string]int{}, []byte("x"))
	if err != nil || !bytes.Equal(b, []byte{0, 0, 'x'}) {
		t.Fatalf("empty object: %x, %v", b, err)
	}
	b, err = EncodeJSONPacket(map[string]string{"a": "<&>"}, nil)
	if err != nil || string(b[2:]) != `{"a":"<&>"}` {
		t.Fatalf("no HTML escaping: %q, %v", b, err)
	}
	p, _ := DecodePacket(b)
	var m map[string]string
	if err := p.UnmarshalHead(&m); err != nil || m["a"] != "<&>" {
		t.Fatalf("UnmarshalHead: %v %v", m, err)
	}
	if err := (&Packet{Head: []byte{1}}).UnmarshalHead(&m); !errors.Is(err, ErrMalformed) {
		t.Fatalf("binary head UnmarshalHead: %v", err)
	}
}

func FuzzDecodePacket(f *testing.F) {
	f.Add([]byte{0, 0})
	f.Add([]byte{0, 1, 0x3a, 1, 2, 3})
	f.Add(append([]byte{0, 7}, `{"a":1}body`...))
	f.Add(append([]byte{0, 22}, `{"type":"link","at":1}`...))
	f.Add([]byte{0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := DecodePacket(b)
		if err != nil {
			if p != nil {
				t.Fatal("packet with error")
			}
			return
		}
		again, err := p.Encode()
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("re-encode %x != %x", again, b)
		}
	})
}
