package telehash

import (
	"fmt"
	"io"

	"golang.org/x/crypto/chacha20"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/nacl/secretbox"
)

// cloakAEAD is ChaCha20-Poly1305 under the cloaking key. Its keystream
// from block 1 on is the cloaking keystream after the first 64 bytes,
// and unlike package chacha20 it has assembly on amd64 (see cloakXOR).
var cloakAEAD, _ = chacha20poly1305.New(cloakKeyCached[:])

// cloakSpare is the spare capacity cloakXOR needs after its input to use
// the fast path (the AEAD writes its tag there).
const cloakSpare = chacha20poly1305.Overhead

// sealChannelDatagram encrypts inner for the exchange's current session
// and cloaks it in one buffer: the complete UDP payload of a channel
// packet (the same bytes as Cloak(SealChannel(inner), 1)).
func (x *Exchange) sealChannelDatagram(rnd io.Reader, inner []byte) ([]byte, error) {
	s, tok, err := x.sealKeys()
	if err != nil {
		return nil, err
	}
	var rb [sealRandSize]byte
	if err := readSealRand(rnd, rb[:]); err != nil {
		return nil, err
	}
	return sealDatagram(make([]byte, 0, channelOverhead+len(inner)+cloakSpare), s, tok, rb[:], inner), nil
}

// sealRandSize is the randomness one channel datagram takes: the cloak
// nonce (first byte not 0) and the secretbox nonce.
const sealRandSize = CloakNonceSize + NonceSize3a

// readSealRand fills rb (sealRandSize bytes a datagram) with nonces.
func readSealRand(rnd io.Reader, rb []byte) error {
	if _, err := io.ReadFull(rnd, rb); err != nil {
		return fmt.Errorf("telehash: channel nonce: %w", err)
	}
	for i := 0; i < len(rb); i += sealRandSize {
		for rb[i] == 0 {
			if _, err := io.ReadFull(rnd, rb[i:i+1]); err != nil {
				return fmt.Errorf("telehash: cloak nonce: %w", err)
			}
		}
	}
	return nil
}

// sealKeys returns the current session and the remote token.
func (x *Exchange) sealKeys() (*Session3a, Token, error) {
	x.mu.Lock()
	s, tok := x.session, x.remoteToken
	x.mu.Unlock()
	if s == nil {
		return nil, Token{}, ErrNoSession
	}
	return s, tok, nil
}

// sealDatagram appends the cloaked channel datagram of inner to dst (an
// empty buffer, best with channelOverhead+len(inner)+cloakSpare
// capacity), with the nonces in rb (sealRandSize bytes).
func sealDatagram(dst []byte, s *Session3a, tok Token, rb, inner []byte) []byte {
	out := append(dst[:0], rb[:CloakNonceSize]...)
	out = append(out, 0, 0) // the zero LOB head length
	out = append(out, tok[:]...)
	var nonce [NonceSize3a]byte
	copy(nonce[:], rb[CloakNonceSize:sealRandSize])
	out = append(out, nonce[:]...)
	out = secretbox.Seal(out, inner, &nonce, &s.enc)
	// cannot fail: the nonce is CloakNonceSize bytes
	_ = cloakXOR(out[:CloakNonceSize], out[CloakNonceSize:])
	return out
}

// cloakXOR applies the cloaking stream for nonce (ChaCha20, 64-bit
// nonce, counter 0) to b in place. When b has cloakSpare bytes of spare
// capacity, which it overwrites, bytes from 64 on are XORed by sealing
// them with ChaCha20-Poly1305 (same key and nonce; its encryption starts
// at block 1) and dropping the tag.
func cloakXOR(nonce, b []byte) error {
	var n [chacha20.NonceSize]byte
	copy(n[4:], nonce)
	c, err := chacha20.NewUnauthenticatedCipher(cloakKeyCached[:], n[:])
	if err != nil {
		return fmt.Errorf("telehash: cloak cipher: %w", err)
	}
	if len(b) <= 64 || cap(b)-len(b) < cloakSpare {
		c.XORKeyStream(b, b)
		return nil
	}
	c.XORKeyStream(b[:64], b[:64])
	rest := b[64:]
	cloakAEAD.Seal(rest[:0], n[:], rest, nil)
	return nil
}

// uncloakInPlace removes up to MaxCloakRounds cloaking rounds from b,
// overwriting it (and cloakSpare bytes of b's spare capacity, if any), and
// returns the packet (a suffix of b). Uncloaked input (first byte 0) is
// returned as is. It accepts what the tests' plain uncloak accepts, with
// the round limit (FuzzUncloakInPlace checks this).
func uncloakInPlace(b []byte) ([]byte, error) {
	if len(b) < 2 {
		return nil, fmt.Errorf("%w: packet of %d bytes", ErrMalformed, len(b))
	}
	for rounds := 0; b[0] != 0; rounds++ {
		if rounds == MaxCloakRounds {
			return nil, fmt.Errorf("%w: more than %d cloaking rounds", ErrMalformed, MaxCloakRounds)
		}
		if len(b) < minCloakedLen {
			return nil, fmt.Errorf("%w: cloaked packet of %d bytes too short", ErrMalformed, len(b))
		}
		if err := cloakXOR(b[:CloakNonceSize], b[CloakNonceSize:]); err != nil {
			return nil, err
		}
		b = b[CloakNonceSize:]
	}
	return b, nil
}

// openChannelFast checks the token and decrypts an outer channel packet
// (uncloaked, LOB with empty head) into a new buffer (getRecv).
func (x *Exchange) openChannelFast(outer []byte) ([]byte, error) {
	const hdr = 2 + TokenSize + NonceSize3a
	if len(outer) < hdr+secretbox.Overhead || outer[0] != 0 || outer[1] != 0 {
		return nil, fmt.Errorf("%w: channel packet of %d bytes", ErrMalformed, len(outer))
	}
	if !Token(outer[2 : 2+TokenSize]).Equal(x.token) {
		return nil, ErrWrongToken
	}
	x.mu.Lock()
	s := x.session
	x.mu.Unlock()
	if s == nil {
		return nil, ErrNoSession
	}
	var nonce [NonceSize3a]byte
	copy(nonce[:], outer[2+TokenSize:hdr])
	box := outer[hdr:]
	inner, ok := secretbox.Open(getRecv(len(box)-secretbox.Overhead), box, &nonce, &s.dec)
	if !ok {
		return nil, fmt.Errorf("%w: 3a channel secretbox", ErrDecrypt)
	}
	return inner, nil
}
