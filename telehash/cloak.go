package telehash

import (
	"crypto/sha256"
	"fmt"
	"io"

	"golang.org/x/crypto/chacha20"
)

// CloakNonceSize is the size of the nonce prefixed by each cloaking round.
const CloakNonceSize = 8

// MaxCloakRounds caps the rounds Cloak applies.
const MaxCloakRounds = 16

// minCloakedLen is the shortest input telehash-js lob.decloak will uncloak:
// an 8 byte nonce plus a minimal 2 byte packet.
const minCloakedLen = CloakNonceSize + 2

// cloakKey returns SHA-256("telehash"), the fixed cloaking key (spec:
// e3x/cloaking.md "The key is ... the SHA-256 of the string telehash").
func cloakKey() [32]byte { return sha256.Sum256([]byte("telehash")) }

// cloakCipher returns ChaCha20 in its original 64-bit nonce form with a
// zero counter: Go's IETF variant with four zero bytes before the 8 byte
// nonce is the same stream (notes: "Cloaking").
func cloakCipher(nonce []byte) (*chacha20.Cipher, error) {
	key := cloakKey()
	var n [chacha20.NonceSize]byte
	copy(n[4:], nonce)
	c, err := chacha20.NewUnauthenticatedCipher(key[:], n[:])
	if err != nil {
		return nil, fmt.Errorf("telehash: cloak cipher: %w", err)
	}
	return c, nil
}

// Cloak applies rounds (1..MaxCloakRounds) of cloaking to packet (spec:
// e3x/cloaking.md "Per-Packet"): each round prefixes a random 8 byte nonce
// whose first byte is non-zero and ChaCha20-encrypts the rest. rnd supplies
// the randomness (crypto/rand.Reader in production).
func Cloak(rnd io.Reader, packet []byte, rounds int) ([]byte, error) {
	if rounds < 1 || rounds > MaxCloakRounds {
		return nil, fmt.Errorf("telehash: cloak rounds %d out of range 1..%d", rounds, MaxCloakRounds)
	}
	total := len(packet) + rounds*CloakNonceSize
	if total > MaxPacketSize {
		return nil, fmt.Errorf("%w: cloaked packet of %d bytes exceeds %d", ErrTooLarge, total, MaxPacketSize)
	}
	out := make([]byte, total)
	copy(out[total-len(packet):], packet)
	for r := 0; r < rounds; r++ {
		start := total - len(packet) - (r+1)*CloakNonceSize
		nonce := out[start : start+CloakNonceSize]
		for {
			if _, err := io.ReadFull(rnd, nonce); err != nil {
				return nil, fmt.Errorf("telehash: cloak nonce: %w", err)
			}
			if nonce[0] != 0 {
				break
			}
		}
		c, err := cloakCipher(nonce)
		if err != nil {
			return nil, err
		}
		rest := out[start+CloakNonceSize:]
		c.XORKeyStream(rest, rest)
	}
	return out, nil
}
