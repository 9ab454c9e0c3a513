package telehash

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"
)

// goVectors are packets made by this package for telehash-js to check
// (testdata/check_go_vectors.js). They reuse the keys of the telehash-js
// vectors: Go plays A (with its opaque 1a key) talking to telehash-js B.
type goVectors struct {
	Hashname string      `json:"hashname"`
	At       uint64      `json:"at"`
	Msg      string      `json:"msg_a_to_b"`
	Channels []jsChannel `json:"channel_a_to_b"`
	Cloak    struct {
		Plain   string `json:"plain"`
		Cloaked string `json:"cloaked"`
	} `json:"cloak"`
}

func makeGoVectors(t *testing.T) []byte {
	v := loadJSVectors(t).Exchange
	idA, err := NewIdentity(map[CSID][]byte{CS3a: unhex(t, v.A.Key), 0x1a: unhex(t, v.A.Key1a)},
		map[CSID][]byte{CS3a: unhex(t, v.A.Secret)})
	if err != nil {
		t.Fatal(err)
	}
	r := newDetRand("go-vectors")
	xa, err := NewExchange(r, idA, unhex(t, v.B.Key))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := xa.setAt(1700000000); err != nil {
		t.Fatal(err)
	}
	if _, _, err := xa.receiveHandshake(unhex(t, v.MsgBToA)); err != nil {
		t.Fatal(err)
	}
	var out goVectors
	out.Hashname = string(idA.Hashname())
	out.At = xa.At()
	msg, err := xa.Handshake()
	if err != nil {
		t.Fatal(err)
	}
	out.Msg = hex.EncodeToString(msg)
	for _, cp := range []ChannelPacket{
		{C: 2, Type: "test", Seq: 1, Body: []byte("hello from go")},
		{C: 2, Ack: 0, Miss: []uint32{1, 50}},
		{C: 4, End: true, Err: "boom", Extra: map[string]json.RawMessage{"extra": json.RawMessage(`{"x":[1,2]}`)}, Body: []byte{0, 1, 2, 255}},
	} {
		pkt, err := xa.encryptChannel(&cp)
		if err != nil {
			t.Fatal(err)
		}
		inner, _ := cp.EncodeChannelInner()
		p, _ := DecodePacket(inner)
		var j map[string]any
		json.Unmarshal(p.Head, &j)
		out.Channels = append(out.Channels, jsChannel{JSON: j, Body: hex.EncodeToString(cp.Body), Packet: hex.EncodeToString(pkt)})
	}
	plain := unhex(t, v.MsgBToA)
	cl, err := Cloak(r, plain, 3)
	if err != nil {
		t.Fatal(err)
	}
	out.Cloak.Plain, out.Cloak.Cloaked = hex.EncodeToString(plain), hex.EncodeToString(cl)
	b, err := json.MarshalIndent(out, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// TestGoVectorsPinned keeps testdata/go_vectors.json (checked against
// telehash-js by testdata/check_go_vectors.js) in step with the code.
// Regenerate with TELEHASH_UPDATE_VECTORS=1 go test -run GoVectors.
func TestGoVectorsPinned(t *testing.T) {
	got := makeGoVectors(t)
	const path = "testdata/go_vectors.json"
	if os.Getenv("TELEHASH_UPDATE_VECTORS") == "1" {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is stale: regenerate it and re-run check_go_vectors.js", path)
	}
}
