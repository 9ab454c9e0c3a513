package telehash

import "fmt"

// base32Alphabet is the RFC 4648 alphabet in lower case (spec: base32.md).
const base32Alphabet = "abcdefghijklmnopqrstuvwxyz234567"

// MaxBase32Len caps the length of base32 text accepted by Base32Decode.
// Telehash only base32-encodes small fixed values (hashnames, keys); the
// largest in practice is a CS2a RSA key of a few hundred bytes.
const MaxBase32Len = 8192

// Base32Encode encodes b as RFC 4648 base32, lower case, without padding
// (spec: base32.md "defined by RFC 4648 with no padding and using only the
// lower case alphabet").
func Base32Encode(b []byte) string {
	out := make([]byte, 0, (len(b)*8+4)/5)
	var acc uint32
	bits := 0
	for _, c := range b {
		acc = acc<<8 | uint32(c)
		bits += 8
		for bits >= 5 {
			bits -= 5
			out = append(out, base32Alphabet[(acc>>uint(bits))&31])
		}
	}
	if bits > 0 {
		out = append(out, base32Alphabet[(acc<<uint(5-bits))&31])
	}
	return string(out)
}

// base32Value maps one character to its 5-bit value, accepting both cases
// (spec: base32.md says base32 "is case insensitive"; telehash-js decodes
// either case).
func base32Value(c byte) (uint32, bool) {
	switch {
	case c >= 'a' && c <= 'z':
		return uint32(c - 'a'), true
	case c >= 'A' && c <= 'Z':
		return uint32(c - 'A'), true
	case c >= '2' && c <= '7':
		return uint32(c-'2') + 26, true
	}
	return 0, false
}

// Base32Decode decodes unpadded RFC 4648 base32 (spec: base32.md). It is
// strict: it rejects padding, whitespace, characters outside the alphabet,
// impossible lengths and non-zero trailing bits, so that every accepted
// string is the canonical encoding of its result (up to letter case).
func Base32Decode(s string) ([]byte, error) {
	if len(s) > MaxBase32Len {
		return nil, fmt.Errorf("%w: base32 text of %d chars exceeds %d", ErrTooLarge, len(s), MaxBase32Len)
	}
	switch len(s) % 8 {
	case 1, 3, 6:
		return nil, fmt.Errorf("%w: base32 length %d is impossible", ErrMalformed, len(s))
	}
	out := make([]byte, 0, len(s)*5/8)
	var acc uint32
	bits := 0
	for i := 0; i < len(s); i++ {
		v, ok := base32Value(s[i])
		if !ok {
			return nil, fmt.Errorf("%w: invalid base32 character %q at %d", ErrMalformed, s[i], i)
		}
		acc = acc<<5 | v
		bits += 5
		if bits >= 8 {
			bits -= 8
			out = append(out, byte(acc>>uint(bits)))
		}
	}
	if bits > 0 && acc&(1<<uint(bits)-1) != 0 {
		return nil, fmt.Errorf("%w: non-zero trailing bits in base32", ErrMalformed)
	}
	return out, nil
}
