package telehash

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
)

func TestCloakKey(t *testing.T) {
	// spec: e3x/cloaking.md
	k := cloakKey()
	if got := hex.EncodeToString(k[:]); got != "d7f0e555546241b2a944ecd6d0de66856ac50b0baba76a6f5a4782956ca9459a" {
		t.Fatalf("cloak key %s", got)
	}
}

func TestCloakRoundTrip(t *testing.T) {
	r := newDetRand("cloak")
	pkt, _ := EncodePacket([]byte{0x3a}, bytes.Repeat([]byte{7}, 100))
	for rounds := 1; rounds <= MaxCloakRounds; rounds++ {
		c, err := Cloak(r, pkt, rounds)
		if err != nil {
			t.Fatal(err)
		}
		if len(c) != len(pkt)+8*rounds || c[0] == 0 {
			t.Fatalf("rounds %d: len %d first %d", rounds, len(c), c[0])
		}
		got, n, err := uncloak(c)
		if err != nil || n != rounds || !bytes.Equal(got, pkt) {
			t.Fatalf("rounds %d: uncloak %d rounds, %v", rounds, n, err)
		}
	}
}

func TestCloakZeroNonceSkipped(t *testing.T) {
	// A reader whose first 8 bytes start with 0 must be skipped.
	src := append(make([]byte, 8), bytes.Repeat([]byte{5}, 8)...)
	c, err := Cloak(bytes.NewReader(src), []byte{0, 0}, 1)
	if err != nil || !bytes.Equal(c[:8], bytes.Repeat([]byte{5}, 8)) {
		t.Fatalf("cloak %x, %v", c, err)
	}
	if _, err := Cloak(bytes.NewReader(nil), []byte{0, 0}, 1); err == nil {
		t.Fatal("short reader accepted")
	}
}

func TestUncloakErrors(t *testing.T) {
	tests := []struct {
		in  []byte
		err error
	}{
		{nil, ErrMalformed},
		{[]byte{0}, ErrMalformed},
		{[]byte{1, 2, 3, 4, 5, 6, 7, 8, 9}, ErrMalformed}, // shorter than nonce + 2
		{make([]byte, MaxPacketSize+1), ErrTooLarge},
	}
	for _, tt := range tests {
		if _, _, err := uncloak(tt.in); !errors.Is(err, tt.err) {
			t.Errorf("uncloak(%x): %v, want %v", tt.in, err, tt.err)
		}
	}
	// Uncloaked input passes through unchanged.
	in := []byte{0, 0, 1}
	if got, n, err := uncloak(in); err != nil || n != 0 || !bytes.Equal(got, in) {
		t.Errorf("plain: %x %d %v", got, n, err)
	}
	if _, err := Cloak(newDetRand("x"), []byte{0, 0}, 0); err == nil {
		t.Error("0 rounds accepted")
	}
	if _, err := Cloak(newDetRand("x"), make([]byte, MaxPacketSize), 1); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversize cloak: %v", err)
	}
}

func FuzzUncloak(f *testing.F) {
	r := newDetRand("fuzz-cloak")
	pkt, _ := EncodePacket([]byte(`{"type":"test"}`), []byte("body"))
	for rounds := 1; rounds <= 3; rounds++ {
		c, _ := Cloak(r, pkt, rounds)
		f.Add(c)
	}
	f.Add([]byte{0, 0})
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, n, err := uncloak(b)
		if err != nil {
			return
		}
		if len(p) < 2 || p[0] != 0 || len(p) != len(b)-8*n {
			t.Fatalf("uncloaked %x from %x rounds %d", p, b, n)
		}
		_, _ = DecodePacket(p)
	})
}
