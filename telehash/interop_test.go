package telehash

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"reflect"
	"testing"
)

// jsVectors mirrors testdata/telehash_js_vectors.json, produced by
// testdata/gen_vectors.js with telehash-js 0.4.18.
type jsVectors struct {
	Base32    []struct{ Hex, B32 string }
	Hashnames []struct {
		Keys     map[string]string
		Hashname Hashname
	}
	Cloak []struct {
		Rounds         int
		Plain, Cloaked string
	}
	Exchange struct {
		A, B        jsPeer
		MsgAToB     string      `json:"msg_a_to_b"`
		MsgAAt      uint64      `json:"msg_a_at"`
		MsgBToA     string      `json:"msg_b_to_a"`
		MsgBAt      uint64      `json:"msg_b_at"`
		ChannelAToB []jsChannel `json:"channel_a_to_b"`
		ChannelBToA jsChannel   `json:"channel_b_to_a"`
	}
}

type jsPeer struct {
	Key       string
	Secret    string
	Key1a     string
	EphKey    string `json:"eph_key"`
	EphSecret string `json:"eph_secret"`
	Token     string
	Order     int
	Hashname  Hashname
	At        uint64
}

type jsChannel struct {
	JSON   map[string]any `json:"json"`
	Body   string         `json:"body"`
	Packet string         `json:"packet"`
}

func loadJSVectors(t *testing.T) *jsVectors {
	t.Helper()
	raw, err := os.ReadFile("testdata/telehash_js_vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v jsVectors
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	return &v
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestInteropJSBase32AndHashname(t *testing.T) {
	v := loadJSVectors(t)
	if len(v.Base32) == 0 || len(v.Hashnames) == 0 {
		t.Fatal("no vectors")
	}
	for _, b := range v.Base32 {
		if got := Base32Encode(unhex(t, b.Hex)); got != b.B32 {
			t.Errorf("base32 %s: %q want %q", b.Hex, got, b.B32)
		}
	}
	for _, h := range v.Hashnames {
		if got, err := HashnameFromBase32Keys(h.Keys); err != nil || got != h.Hashname {
			t.Errorf("hashname: %q %v want %q", got, err, h.Hashname)
		}
	}
}

func TestInteropJSCloak(t *testing.T) {
	v := loadJSVectors(t)
	for _, c := range v.Cloak {
		got, n, err := uncloak(unhex(t, c.Cloaked))
		if err != nil || n != c.Rounds || !bytes.Equal(got, unhex(t, c.Plain)) {
			t.Errorf("uncloak %d rounds: %x %d %v", c.Rounds, got, n, err)
		}
	}
}

// B (Go) opens A's (telehash-js) handshake, then decrypts A's channel
// packets and builds packets that telehash-js produced byte for byte
// except for the random nonce.
func TestInteropJSHandshakeAndChannels(t *testing.T) {
	v := loadJSVectors(t)
	x := v.Exchange
	idB, err := NewIdentity(map[CSID][]byte{CS3a: unhex(t, x.B.Key)}, map[CSID][]byte{CS3a: unhex(t, x.B.Secret)})
	if err != nil {
		t.Fatal(err)
	}
	if idB.Hashname() != x.B.Hashname {
		t.Fatalf("b hashname %s want %s", idB.Hashname(), x.B.Hashname)
	}
	idA, err := NewIdentity(map[CSID][]byte{CS3a: unhex(t, x.A.Key), 0x1a: unhex(t, x.A.Key1a)},
		map[CSID][]byte{CS3a: unhex(t, x.A.Secret)})
	if err != nil || idA.Hashname() != x.A.Hashname {
		t.Fatalf("a hashname %s want %s: %v", idA.Hashname(), x.A.Hashname, err)
	}

	// A's message to B.
	h, err := OpenHandshake(idB, unhex(t, x.MsgAToB))
	if err != nil {
		t.Fatal(err)
	}
	if h.Hashname != x.A.Hashname || h.At != x.MsgAAt || hex.EncodeToString(h.Ephemeral[:]) != x.A.EphKey ||
		hex.EncodeToString(h.Token[:]) != x.A.Token {
		t.Fatalf("handshake from js: %+v", h)
	}
	// B's message to A.
	h, err = OpenHandshake(idA, unhex(t, x.MsgBToA))
	if err != nil || h.Hashname != x.B.Hashname || h.At != x.MsgBAt {
		t.Fatalf("b->a: %+v %v", h, err)
	}

	// B's exchange with B's telehash-js ephemeral key.
	ephB, err := KeypairFromSecret(unhex(t, x.B.EphSecret))
	if err != nil || hex.EncodeToString(ephB.Public[:]) != x.B.EphKey {
		t.Fatalf("b ephemeral: %v", err)
	}
	xb, err := newExchange(newDetRand("interop"), idB, unhex(t, x.A.Key), ephB)
	if err != nil {
		t.Fatal(err)
	}
	if int(xb.Order()) != x.B.Order || tokenHex(xb.Token()) != x.B.Token {
		t.Fatalf("order %d token %x, want %d %s", xb.Order(), xb.Token(), x.B.Order, x.B.Token)
	}
	if _, _, err := xb.receiveHandshake(unhex(t, x.MsgAToB)); err != nil {
		t.Fatal(err)
	}
	for _, c := range x.ChannelAToB {
		cp, err := xb.decryptChannel(unhex(t, c.Packet))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(cp.Body, unhex(t, c.Body)) || !sameJSON(t, cp, c.JSON) {
			t.Fatalf("channel from js: %v %q, want %v", cp, cp.Extra, c.JSON)
		}
	}
	// A packet B sent with telehash-js decrypts on A's side with Go too.
	ephA, _ := KeypairFromSecret(unhex(t, x.A.EphSecret))
	xa, _ := newExchange(newDetRand("interop-a"), idA, unhex(t, x.B.Key), ephA)
	if int(xa.Order()) != x.A.Order {
		t.Fatalf("a order %d", xa.Order())
	}
	if _, _, err := xa.receiveHandshake(unhex(t, x.MsgBToA)); err != nil {
		t.Fatal(err)
	}
	cp, err := xa.decryptChannel(unhex(t, x.ChannelBToA.Packet))
	if err != nil || !sameJSON(t, cp, x.ChannelBToA.JSON) {
		t.Fatalf("b->a channel: %v %v", cp, err)
	}
	// And what Go's B sends, Go's A (standing in for js A, same keys) reads.
	out, err := xb.encryptChannel(&ChannelPacket{C: 2, Type: "reply", Seq: 1, Body: []byte("go")})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out[2:18], unhex(t, x.ChannelBToA.Packet)[2:18]) {
		t.Fatal("go uses another token than telehash-js")
	}
	if cp, err := xa.decryptChannel(out); err != nil || string(cp.Body) != "go" {
		t.Fatalf("go b->a: %v", err)
	}
}

// sameJSON compares the decoded packet's fields with telehash-js's JSON.
func sameJSON(t *testing.T, cp *ChannelPacket, want map[string]any) bool {
	t.Helper()
	b, err := cp.EncodeChannelInner()
	if err != nil {
		t.Fatal(err)
	}
	p, _ := DecodePacket(b)
	var got map[string]any
	if err := json.Unmarshal(p.Head, &got); err != nil {
		t.Fatal(err)
	}
	return reflect.DeepEqual(got, want)
}

func tokenHex(t Token) string { return hex.EncodeToString(t[:]) }
