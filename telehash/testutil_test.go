package telehash

import (
	"crypto/sha256"
	"encoding/binary"
	"net/netip"
	"testing"

	"golang.org/x/crypto/chacha20"
)

// detRand is a deterministic randomness source for reproducible tests.
type detRand struct{ c *chacha20.Cipher }

func newDetRand(seed string) *detRand {
	key := sha256.Sum256([]byte(seed))
	c, err := chacha20.NewUnauthenticatedCipher(key[:], make([]byte, 12))
	if err != nil {
		panic(err)
	}
	return &detRand{c: c}
}

func (r *detRand) Read(p []byte) (int, error) {
	clear(p)
	r.c.XORKeyStream(p, p)
	return len(p), nil
}

// mustIdentity returns a deterministic 3a identity.
func mustIdentity(t testing.TB, seed string) *Identity {
	t.Helper()
	id, err := GenerateIdentity(newDetRand(seed))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func be16(n int) []byte {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], uint16(n))
	return b[:]
}

func sha256Of(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

func netipAddrPort(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
