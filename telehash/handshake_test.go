package telehash

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

func TestOrderOf(t *testing.T) {
	lo := []byte{1, 2, 3}
	hi := []byte{1, 3, 0}
	if OrderOf(hi, lo) != Odd || OrderOf(lo, hi) != Even || OrderOf(lo, lo) != Odd {
		t.Fatal("order")
	}
	if Odd.String() != "odd" || Even.String() != "even" {
		t.Fatal("String")
	}
}

func TestAdjustAt(t *testing.T) {
	tests := []struct {
		at   uint64
		o    Order
		want uint64
	}{
		{0, Odd, 1}, {0, Even, 2}, {1, Odd, 1}, {1, Even, 2},
		{10, Odd, 11}, {10, Even, 10}, {1700000000, Odd, 1700000001},
		{MaxAt, Odd, MaxAt},
	}
	for _, tt := range tests {
		if got, err := AdjustAt(tt.at, tt.o); err != nil || got != tt.want {
			t.Errorf("AdjustAt(%d,%v) = %d, %v", tt.at, tt.o, got, err)
		}
	}
	if _, err := AdjustAt(MaxAt, Even); !errors.Is(err, ErrExhausted) {
		t.Errorf("overflow: %v", err)
	}
}

func TestLinkInnerRoundTrip(t *testing.T) {
	id := mustIdentity(t, "link")
	// Add an opaque 1a key, as telehash-js ids carry.
	keys := map[CSID][]byte{CS3a: id.kp.Public[:], 0x1a: bytes.Repeat([]byte{1}, 21)}
	multi, err := NewIdentity(keys, map[CSID][]byte{CS3a: id.kp.Secret[:]})
	if err != nil {
		t.Fatal(err)
	}
	for _, local := range []*Identity{id, multi} {
		inner, err := EncodeLinkInner(local, CS3a, 1234567)
		if err != nil {
			t.Fatal(err)
		}
		p, _ := DecodePacket(inner)
		if string(p.Head) != `{"type":"link","at":1234567}` {
			t.Fatalf("head %s", p.Head)
		}
		h, err := ParseLinkInner(CS3a, inner)
		if err != nil {
			t.Fatal(err)
		}
		if h.At != 1234567 || h.Type != "link" || !bytes.Equal(h.Key, local.kp.Public[:]) || h.Hashname != local.Hashname() {
			t.Fatalf("parsed %+v", h)
		}
	}
	if _, err := EncodeLinkInner(id, 0x1a, 1); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("missing csid: %v", err)
	}
	if _, err := EncodeLinkInner(id, CS3a, 0); !errors.Is(err, ErrMalformed) {
		t.Fatalf("at 0: %v", err)
	}
}

func TestParseLinkInnerErrors(t *testing.T) {
	key := bytes.Repeat([]byte{9}, 32)
	attach := func(head string) []byte {
		var h []byte
		if head != "" {
			h = []byte(head)
		}
		b, _ := EncodePacket(h, key)
		return b
	}
	inner := func(head string, body []byte) []byte {
		b, err := EncodePacket([]byte(head), body)
		if err != nil {
			t.Fatalf("building %s: %v", head, err)
		}
		return b
	}
	good := attach(`{"3a":null}`)
	tests := []struct {
		name string
		in   []byte
		err  error
	}{
		{"not lob", []byte{1}, ErrMalformed},
		{"no json", inner("", good), ErrMalformed},
		{"key type", inner(`{"type":"key","at":1}`, good), ErrUnsupported},
		{"jwt type", inner(`{"type":"jwt","at":1}`, good), ErrUnsupported},
		{"type number", inner(`{"type":5,"at":1}`, good), ErrMalformed},
		{"no at", inner(`{"type":"link"}`, good), ErrMalformed},
		{"at zero", inner(`{"type":"link","at":0}`, good), ErrMalformed},
		{"at negative", inner(`{"type":"link","at":-1}`, good), ErrMalformed},
		{"at float", inner(`{"type":"link","at":1.5}`, good), ErrMalformed},
		{"at string", inner(`{"type":"link","at":"1"}`, good), ErrMalformed},
		{"at huge", inner(`{"type":"link","at":9007199254740992}`, good), ErrMalformed},
		{"attach not lob", inner(`{"at":1}`, []byte{9}), ErrMalformed},
		{"short key", inner(`{"at":1}`, []byte{0, 0, 1, 2}), ErrInvalidKey},
		{"binary attach head", inner(`{"at":1}`, attach("ab")), ErrMalformed},
		{"im not string", inner(`{"at":1}`, attach(`{"1a":5}`)), ErrMalformed},
		{"im null", inner(`{"at":1}`, attach(`{"1a":null}`)), ErrMalformed},
		{"im bad b32", inner(`{"at":1}`, attach(`{"1a":"!!!!!!!!"}`)), ErrMalformed},
		{"im short", inner(`{"at":1}`, attach(`{"1a":"aaaaaaaa"}`)), ErrMalformed},
	}
	for _, tt := range tests {
		if _, err := ParseLinkInner(CS3a, tt.in); !errors.Is(err, tt.err) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.err)
		}
	}
	// Lenient cases telehash-js accepts: missing type, no attach head,
	// non-CSID attach keys, and a value for the message CSID.
	im := Intermediate(key)
	for _, ok := range [][]byte{
		inner(`{"at":1}`, good),
		inner(`{"type":null,"at":1}`, good),
		inner(`{"type":"link","at":9007199254740991}`, good),
		inner(`{"at":1}`, attach("")),
		inner(`{"at":1}`, attach(`{"3a":"whatever","hashname":"x","cs1a":1}`)),
		inner(`{"at":1}`, attach(fmt.Sprintf(`{"3a":null,"1a":"%s"}`, Base32Encode(im[:])))),
	} {
		if _, err := ParseLinkInner(CS3a, ok); err != nil {
			t.Errorf("rejected %q: %v", ok, err)
		}
	}
}

func TestOpenHandshake(t *testing.T) {
	r := newDetRand("open-hs")
	a, b := mustIdentity(t, "a"), mustIdentity(t, "b")
	eph, _ := GenerateKeypair(r)
	msg, err := SealHandshake(r, a, eph, b.kp.Public[:], 42)
	if err != nil {
		t.Fatal(err)
	}
	if msg[0] != 0 || msg[1] != 1 || msg[2] != 0x3a {
		t.Fatalf("message head %x", msg[:3])
	}
	h, err := OpenHandshake(b, msg)
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := TokenFromBody(eph.Public[:])
	if h.At != 42 || h.Hashname != a.Hashname() || h.Ephemeral != eph.Public || h.Token != tok {
		t.Fatalf("handshake %+v", h)
	}
	if _, err := OpenHandshake(a, msg); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("opened by sender: %v", err)
	}
	bad := append([]byte(nil), msg...)
	bad[len(bad)-1] ^= 1 // AUTH
	if _, err := OpenHandshake(b, bad); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("bad AUTH: %v", err)
	}
	bad = append([]byte(nil), msg...)
	bad[2] = 0x1a
	if _, err := OpenHandshake(b, bad); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("1a: %v", err)
	}
	if _, err := OpenHandshake(b, append([]byte{0, 0}, msg[3:]...)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("no head: %v", err)
	}
	// Impersonation: a valid inner carrying someone else's key fails AUTH.
	c := mustIdentity(t, "c")
	inner, _ := EncodeLinkInner(c, CS3a, 1)
	body, _ := SealMessage3a(r, &a.kp, eph, b.kp.Public[:], inner)
	forged, _ := EncodeMessage(CS3a, body)
	if _, err := OpenHandshake(b, forged); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("forged: %v", err)
	}
	// Downgrade: both sides have a higher CSID than the message's.
	keys := map[CSID][]byte{CS3a: b.kp.Public[:], 0x4a: {1, 2, 3}}
	b4, _ := NewIdentity(keys, map[CSID][]byte{CS3a: b.kp.Secret[:]})
	a4, _ := NewIdentity(map[CSID][]byte{CS3a: a.kp.Public[:], 0x4a: {4}}, map[CSID][]byte{CS3a: a.kp.Secret[:]})
	msg4, _ := SealHandshake(r, a4, eph, b.kp.Public[:], 3)
	if _, err := OpenHandshake(b4, msg4); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("downgrade: %v", err)
	}
	if h, err := OpenHandshake(b, msg4); err != nil || h.Hashname != a4.Hashname() {
		t.Fatalf("4a intermediates for a 3a-only receiver: %v", err)
	}
}

// handshakeSeeds returns valid handshake messages to b for fuzz seeds.
func handshakeSeeds(t testing.TB, b *Identity) [][]byte {
	r := newDetRand("hs-seeds")
	a := mustIdentity(t, "seed-a")
	eph, _ := GenerateKeypair(r)
	var out [][]byte
	for _, at := range []uint64{1, 1700000000} {
		msg, err := SealHandshake(r, a, eph, b.kp.Public[:], at)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, msg)
	}
	return out
}

func FuzzOpenHandshake(f *testing.F) {
	b := mustIdentity(f, "fuzz-b")
	for _, s := range handshakeSeeds(f, b) {
		f.Add(s)
	}
	f.Add([]byte{0, 1, 0x3a})
	f.Fuzz(func(t *testing.T, msg []byte) {
		h, err := OpenHandshake(b, msg)
		if err != nil {
			return
		}
		if h.At == 0 || h.At > MaxAt || len(h.Key) != 32 || h.Hashname == "" {
			t.Fatalf("accepted invalid handshake %+v", h)
		}
	})
}

func FuzzParseLinkInner(f *testing.F) {
	a := mustIdentity(f, "fuzz-a")
	multi, _ := NewIdentity(map[CSID][]byte{CS3a: a.kp.Public[:], 0x1a: {1}, 0x2a: {2}}, map[CSID][]byte{CS3a: a.kp.Secret[:]})
	for _, id := range []*Identity{a, multi} {
		inner, _ := EncodeLinkInner(id, CS3a, 1700000001)
		f.Add(inner)
	}
	f.Add([]byte{0, 7, '{', '"', 'a', 't', '"', ':', '1', '}'})
	f.Fuzz(func(t *testing.T, inner []byte) {
		h, err := ParseLinkInner(CS3a, inner)
		if err != nil {
			return
		}
		if _, err := ParseHashname(string(h.Hashname)); err != nil {
			t.Fatalf("bad hashname %q", h.Hashname)
		}
		if h.At == 0 || h.At > MaxAt || len(h.Key) != 32 {
			t.Fatalf("accepted %+v", h)
		}
	})
}

// FuzzOpenHandshakeInner fuzzes the decrypted inner packet behind valid
// encryption and AUTH: whatever is accepted must carry the sender's key.
func FuzzOpenHandshakeInner(f *testing.F) {
	a, b := mustIdentity(f, "fi-a"), mustIdentity(f, "fi-b")
	r := newDetRand("fi")
	eph, _ := GenerateKeypair(r)
	inner, _ := EncodeLinkInner(a, CS3a, 7)
	f.Add(inner)
	f.Add([]byte{0, 0})
	f.Fuzz(func(t *testing.T, inner []byte) {
		body, err := SealMessage3a(r, &a.kp, eph, b.kp.Public[:], inner)
		if err != nil {
			return
		}
		msg, err := EncodeMessage(CS3a, body)
		if err != nil {
			return
		}
		h, err := OpenHandshake(b, msg)
		if err != nil {
			return
		}
		if !bytes.Equal(h.Key, a.kp.Public[:]) || h.Ephemeral != eph.Public {
			t.Fatalf("accepted handshake with key %x", h.Key)
		}
	})
}
