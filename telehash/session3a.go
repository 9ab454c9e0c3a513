package telehash

import (
	"crypto/sha256"
	"fmt"
	"io"

	"golang.org/x/crypto/nacl/secretbox"
)

// Session3a holds the channel keys of one exchange session (spec:
// e3x/cs/3a.md "Channel Setup"). telehash-js uses the full 32 byte digests
// enc = SHA256(s || localEph || remoteEph), dec = SHA256(s || remoteEph ||
// localEph) with s = beforenm(remoteEph, localEphSecret); the spec's "/2"
// folding is not applied.
type Session3a struct {
	enc, dec [32]byte
}

// NewSession3a derives the session keys from the local ephemeral key pair
// and the remote ephemeral public key.
func NewSession3a(localEph *Keypair, remoteEph []byte) (*Session3a, error) {
	remote, err := key32(remoteEph)
	if err != nil {
		return nil, err
	}
	s, err := beforenm(remote, &localEph.Secret)
	if err != nil {
		return nil, err
	}
	var ss Session3a
	h := sha256.New()
	h.Write(s[:])
	h.Write(localEph.Public[:])
	h.Write(remote[:])
	h.Sum(ss.enc[:0])
	h.Reset()
	h.Write(s[:])
	h.Write(remote[:])
	h.Write(localEph.Public[:])
	h.Sum(ss.dec[:0])
	return &ss, nil
}

// Seal encrypts a channel inner packet into a channel BODY (spec:
// e3x/cs/3a.md "Channel BODY"): TOKEN || NONCE || secretbox(inner, NONCE,
// enc). token is the receiver's routing token.
func (s *Session3a) Seal(rnd io.Reader, token Token, inner []byte) ([]byte, error) {
	n := TokenSize + NonceSize3a + secretbox.Overhead + len(inner)
	if n > MaxPacketSize {
		return nil, fmt.Errorf("%w: channel packet of %d bytes", ErrTooLarge, n)
	}
	var nonce [NonceSize3a]byte
	if _, err := io.ReadFull(rnd, nonce[:]); err != nil {
		return nil, fmt.Errorf("telehash: channel nonce: %w", err)
	}
	out := make([]byte, 0, n)
	out = append(out, token[:]...)
	out = append(out, nonce[:]...)
	return secretbox.Seal(out, inner, &nonce, &s.enc), nil
}

// Open decrypts a channel BODY (TOKEN || NONCE || ciphertext) and returns
// the inner packet bytes. The token is not checked here.
func (s *Session3a) Open(body []byte) ([]byte, error) {
	if len(body) > MaxPacketSize {
		return nil, fmt.Errorf("%w: channel packet of %d bytes", ErrTooLarge, len(body))
	}
	if len(body) < TokenSize+NonceSize3a+secretbox.Overhead {
		return nil, fmt.Errorf("%w: 3a channel body of %d bytes", ErrMalformed, len(body))
	}
	var nonce [NonceSize3a]byte
	copy(nonce[:], body[TokenSize:TokenSize+NonceSize3a])
	inner, ok := secretbox.Open(nil, body[TokenSize+NonceSize3a:], &nonce, &s.dec)
	if !ok {
		return nil, fmt.Errorf("%w: 3a channel secretbox", ErrDecrypt)
	}
	return inner, nil
}
