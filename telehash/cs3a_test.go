package telehash

import (
	"bytes"
	"errors"
	"testing"

	"golang.org/x/crypto/nacl/box"
)

func TestBeforenmMatchesNaclBox(t *testing.T) {
	r := newDetRand("beforenm")
	for i := 0; i < 8; i++ {
		a, _ := GenerateKeypair(r)
		b, _ := GenerateKeypair(r)
		got, err := beforenm(&b.Public, &a.Secret)
		if err != nil {
			t.Fatal(err)
		}
		var want [32]byte
		box.Precompute(&want, &b.Public, &a.Secret)
		if got != want {
			t.Fatalf("beforenm differs from box.Precompute")
		}
		other, _ := beforenm(&a.Public, &b.Secret)
		if other != got {
			t.Fatalf("beforenm not symmetric")
		}
	}
	var low [32]byte // all-zero point: low order
	a, _ := GenerateKeypair(r)
	if _, err := beforenm(&low, &a.Secret); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("low-order key: %v", err)
	}
}

func TestKeypairFromSecret(t *testing.T) {
	kp, _ := GenerateKeypair(newDetRand("kp"))
	again, err := KeypairFromSecret(kp.Secret[:])
	if err != nil || *again != *kp {
		t.Fatalf("KeypairFromSecret: %v", err)
	}
	if _, err := KeypairFromSecret(make([]byte, 31)); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("short secret: %v", err)
	}
	if _, err := GenerateKeypair(bytes.NewReader(nil)); err == nil {
		t.Fatal("empty reader accepted")
	}
}

func TestMessage3aRoundTrip(t *testing.T) {
	r := newDetRand("msg")
	a, _ := GenerateKeypair(r)
	b, _ := GenerateKeypair(r)
	eph, _ := GenerateKeypair(r)
	inner := []byte("inner packet")
	body, err := SealMessage3a(r, a, eph, b.Public[:], inner)
	if err != nil {
		t.Fatal(err)
	}
	if len(body) != MessageOverhead3a+len(inner) || !bytes.Equal(body[:32], eph.Public[:]) {
		t.Fatalf("layout: len %d", len(body))
	}
	got, e, err := OpenMessage3a(b, body)
	if err != nil || !bytes.Equal(got, inner) || e != eph.Public {
		t.Fatalf("open: %q %v", got, err)
	}
	if err := VerifyMessage3a(b, a.Public[:], body); err != nil {
		t.Fatalf("verify: %v", err)
	}
	// Wrong sender key fails AUTH.
	c, _ := GenerateKeypair(r)
	if err := VerifyMessage3a(b, c.Public[:], body); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("verify with wrong key: %v", err)
	}
	// Wrong recipient cannot open.
	if _, _, err := OpenMessage3a(c, body); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("open by other: %v", err)
	}
	// Every flipped byte is detected by open or verify.
	for i := range body {
		mut := append([]byte(nil), body...)
		mut[i] ^= 0x40
		_, _, errOpen := OpenMessage3a(b, mut)
		errVerify := VerifyMessage3a(b, a.Public[:], mut)
		if errOpen == nil && errVerify == nil {
			t.Fatalf("flip at %d undetected", i)
		}
	}
	if _, _, err := OpenMessage3a(b, body[:MessageOverhead3a-1]); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short: %v", err)
	}
	if err := VerifyMessage3a(b, a.Public[:], body[:10]); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short verify: %v", err)
	}
	if _, err := SealMessage3a(r, a, eph, b.Public[:5], inner); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("short remote key: %v", err)
	}
}

func TestSession3a(t *testing.T) {
	r := newDetRand("session")
	ea, _ := GenerateKeypair(r)
	eb, _ := GenerateKeypair(r)
	sa, err := NewSession3a(ea, eb.Public[:])
	if err != nil {
		t.Fatal(err)
	}
	sb, _ := NewSession3a(eb, ea.Public[:])
	if sa.enc != sb.dec || sa.dec != sb.enc || sa.enc == sa.dec {
		t.Fatal("session keys do not pair up")
	}
	tokB, _ := TokenFromBody(eb.Public[:])
	body, err := sa.Seal(r, tokB, []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(body[:16], tokB[:]) {
		t.Fatal("token prefix")
	}
	got, err := sb.Open(body)
	if err != nil || string(got) != "hello" {
		t.Fatalf("open: %q %v", got, err)
	}
	if _, err := sa.Open(body); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("own packet opened: %v", err)
	}
	if _, err := sb.Open(body[:39]); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short: %v", err)
	}
	if _, err := NewSession3a(ea, make([]byte, 32)); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("zero key: %v", err)
	}
	if _, err := TokenFromBody(make([]byte, 15)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short token body: %v", err)
	}
}
