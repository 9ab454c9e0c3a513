package telehash

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestBase32Vectors(t *testing.T) {
	// RFC 4648 section 10 vectors, lower case and unpadded.
	tests := []struct{ in, out string }{
		{"", ""},
		{"f", "my"},
		{"fo", "mzxq"},
		{"foo", "mzxw6"},
		{"foob", "mzxw6yq"},
		{"fooba", "mzxw6ytb"},
		{"foobar", "mzxw6ytboi"},
		{"\xff\x00\xaa", "74aku"},
	}
	for _, tt := range tests {
		if got := Base32Encode([]byte(tt.in)); got != tt.out {
			t.Errorf("Base32Encode(%q) = %q, want %q", tt.in, got, tt.out)
		}
		got, err := Base32Decode(tt.out)
		if err != nil || string(got) != tt.in {
			t.Errorf("Base32Decode(%q) = %q, %v", tt.out, got, err)
		}
		got, err = Base32Decode(strings.ToUpper(tt.out))
		if err != nil || string(got) != tt.in {
			t.Errorf("Base32Decode(upper %q) = %q, %v", tt.out, got, err)
		}
	}
}

func TestBase32DecodeRejects(t *testing.T) {
	for _, in := range []string{
		"m",          // impossible length
		"mzx",        // impossible length
		"mzxw6y",     // impossible length
		"my======",   // padding
		"mz",         // non-zero trailing bits
		"mzxw6\n",    // whitespace
		"mzx1",       // '1' not in alphabet
		"mzxw6ytbo!", // punctuation
	} {
		if _, err := Base32Decode(in); !errors.Is(err, ErrMalformed) {
			t.Errorf("Base32Decode(%q) err = %v, want ErrMalformed", in, err)
		}
	}
	if _, err := Base32Decode(strings.Repeat("a", MaxBase32Len+8)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized: err = %v", err)
	}
}

func TestBase32RoundTrip(t *testing.T) {
	r := newDetRand("b32")
	for n := 0; n < 100; n++ {
		b := make([]byte, n)
		r.Read(b)
		s := Base32Encode(b)
		got, err := Base32Decode(s)
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("round trip of %x: %q -> %x, %v", b, s, got, err)
		}
	}
}

func FuzzBase32Decode(f *testing.F) {
	for _, s := range []string{"", "my", "mzxw6ytboi", "MZXW6", "mz", "a", "27ywx5e5ylzxfzxrhptowvwntqrd3jhksyxrfkzi6jfn64d3lwxa"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := Base32Decode(s)
		if err != nil {
			return
		}
		if enc := Base32Encode(b); enc != strings.ToLower(s) {
			t.Fatalf("decode(%q) re-encodes as %q", s, enc)
		}
	})
}
