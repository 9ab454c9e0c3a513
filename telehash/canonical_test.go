package telehash

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"
)

func TestCheckKey3a(t *testing.T) {
	p := make([]byte, 32) // 2^255-19, little-endian
	p[0] = 0xed
	for i := 1; i < 31; i++ {
		p[i] = 0xff
	}
	p[31] = 0x7f
	below := bytes.Clone(p)
	below[0] = 0xec
	top := bytes.Clone(p)
	top[31] = 0xff
	bit255 := make([]byte, 32)
	bit255[31] = 0x80
	bit255[0] = 9
	base := make([]byte, 32)
	base[0] = 9
	for _, tc := range []struct {
		name string
		key  []byte
		ok   bool
	}{
		{"base point", base, true}, {"p-1", below, true}, {"p", p, false},
		{"2^256-19", top, false}, {"bit 255", bit255, false}, {"short", base[:31], false},
	} {
		if err := checkKey3a(tc.key); (err == nil) != tc.ok {
			t.Errorf("%s: checkKey3a = %v", tc.name, err)
		} else if err != nil && !errors.Is(err, ErrInvalidKey) {
			t.Errorf("%s: %v does not wrap ErrInvalidKey", tc.name, err)
		}
	}
}

// flipped returns a's 3a public key with bit 255 set: the same key pair
// for X25519, another hashname.
func flipped(a *Identity) []byte {
	k := bytes.Clone(a.kp.Public[:])
	k[31] |= 0x80
	return k
}

// A non-canonical key is refused wherever it comes from: a URL's keys, a
// link, and a handshake on the wire, which gets no answer.
func TestNonCanonicalKeyRefused(t *testing.T) {
	a := mustIdentity(t, "nc-a")
	bad := map[string]string{"3a": Base32Encode(flipped(a))}
	if hn, err := HashnameFromBase32Keys(bad); err == nil {
		t.Errorf("HashnameFromBase32Keys accepted a non-canonical key: %s", hn)
	}
	bo := fastOpts()
	bo.Allow = allowAll
	b := newTestMesh(t, "nc-b", bo)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	lctx, lcancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer lcancel()
	if _, err := b.Link(lctx, LinkInfo{Keys: bad, Paths: []Path{{Type: "udp4", IP: "127.0.0.1", Port: 9}}}); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("Link of a non-canonical key: %v, want ErrInvalidKey", err)
	}

	// A handshake from a's key pair, presenting the flipped key.
	r := newDetRand("nc")
	eph, _ := GenerateKeypair(r)
	inner, err := EncodeLinkInner(a, CS3a, 7)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(inner, a.kp.Public[:])
	inner[i+31] |= 0x80
	body, err := SealMessage3a(r, &a.kp, eph, b.id.kp.Public[:], inner)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := EncodeMessage(CS3a, body)
	if err != nil {
		t.Fatal(err)
	}
	if h, err := OpenHandshake(b.id, msg); err == nil {
		t.Errorf("OpenHandshake accepted hashname %s for a's key pair", h.Hashname)
	}
	conn := rawUDP(t)
	wire, err := Cloak(r, msg, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.WriteToUDPAddrPort(wire, b.Addr()); err != nil {
		t.Fatal(err)
	}
	for b.Stats().Received == 0 {
		if ctx.Err() != nil {
			t.Fatal("b received nothing")
		}
		time.Sleep(time.Millisecond)
	}
	// b handles a datagram before counting the next one: a PING-like
	// second datagram (garbage) marks that the first was handled.
	if _, err := conn.WriteToUDPAddrPort([]byte{0}, b.Addr()); err != nil {
		t.Fatal(err)
	}
	for b.Stats().DropMalformed == 0 || b.hsPending.Load() > 0 {
		if ctx.Err() != nil {
			t.Fatal("b did not handle the second datagram")
		}
		time.Sleep(time.Millisecond)
	}
	b.mu.Lock()
	peers := len(b.peers)
	b.mu.Unlock()
	if s := b.Stats(); s.HandshakesSent != 0 || s.DropDecrypt != 1 || peers != 0 {
		t.Errorf("b answered or kept a non-canonical handshake: %+v, %d peers", s, peers)
	}
}

// The low-order points refused before any X25519 are exactly those X25519
// refuses (an all-zero result), whatever the scalar.
func TestLowOrderPoints(t *testing.T) {
	r := newDetRand("low-order")
	for i, pt := range lowOrderPoints {
		if err := checkKey3a(pt[:]); err != nil {
			t.Fatalf("point %d not canonical: %v", i, err)
		}
		for range 4 {
			kp, _ := GenerateKeypair(r)
			if _, err := beforenm(&pt, &kp.Secret); err == nil {
				t.Fatalf("point %d: X25519 accepted it", i)
			}
		}
	}
	kp, _ := GenerateKeypair(r)
	if lowOrder(&kp.Public) {
		t.Fatal("a real key taken for a low-order point")
	}
}
