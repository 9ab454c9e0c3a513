package telehash

import (
	"crypto/sha256"
	"fmt"
	"io"
	"sync/atomic"

	"golang.org/x/crypto/curve25519"
	"golang.org/x/crypto/nacl/secretbox"
	"golang.org/x/crypto/poly1305"
	"golang.org/x/crypto/salsa20/salsa"
)

// Sizes of cipher set 3a fields (spec: e3x/cs/3a.md).
const (
	KeySize3a   = 32 // curve25519 public or secret key
	NonceSize3a = 24 // secretbox nonce
	MACSize3a   = poly1305.TagSize
	// MessageOverhead3a is KEY + NONCE + secretbox tag + AUTH.
	MessageOverhead3a = KeySize3a + NonceSize3a + secretbox.Overhead + MACSize3a
)

// Keypair is a cipher set 3a (crypto_box) key pair (spec: e3x/cs/3a.md
// "Keys").
type Keypair struct {
	Public [KeySize3a]byte
	Secret [KeySize3a]byte
}

// GenerateKeypair creates a crypto_box key pair from rnd (crypto/rand.Reader
// in production), as crypto_box_keypair does.
func GenerateKeypair(rnd io.Reader) (*Keypair, error) {
	var kp Keypair
	if _, err := io.ReadFull(rnd, kp.Secret[:]); err != nil {
		return nil, fmt.Errorf("telehash: generating 3a key: %w", err)
	}
	pub, err := curve25519.X25519(kp.Secret[:], curve25519.Basepoint)
	if err != nil {
		return nil, fmt.Errorf("%w: deriving 3a public key: %v", ErrInvalidKey, err)
	}
	copy(kp.Public[:], pub)
	return &kp, nil
}

// KeypairFromSecret rebuilds a key pair from its 32 byte secret.
func KeypairFromSecret(secret []byte) (*Keypair, error) {
	if len(secret) != KeySize3a {
		return nil, fmt.Errorf("%w: 3a secret must be %d bytes, got %d", ErrInvalidKey, KeySize3a, len(secret))
	}
	var kp Keypair
	copy(kp.Secret[:], secret)
	pub, err := curve25519.X25519(kp.Secret[:], curve25519.Basepoint)
	if err != nil {
		return nil, fmt.Errorf("%w: deriving 3a public key: %v", ErrInvalidKey, err)
	}
	copy(kp.Public[:], pub)
	return &kp, nil
}

// x25519Calls counts the X25519 operations of beforenm, the expensive
// part of a handshake: tests check which paths avoid it.
var x25519Calls atomic.Uint64

// beforenm is NaCl crypto_box_beforenm: HSalsa20 over the X25519 shared
// point. Unlike nacl/box.Precompute it rejects low-order public keys (an
// all-zero shared point), which no honest peer sends.
func beforenm(public, secret *[KeySize3a]byte) ([32]byte, error) {
	x25519Calls.Add(1)
	var out [32]byte
	shared, err := curve25519.X25519(secret[:], public[:])
	if err != nil {
		return out, fmt.Errorf("%w: %v", ErrInvalidKey, err)
	}
	var k [32]byte
	copy(k[:], shared)
	var zero [16]byte
	salsa.HSalsa20(&out, &zero, &k, &salsa.Sigma)
	return out, nil
}

// key32 converts a slice to a 32 byte public key, which must be
// canonical (see checkKey3a).
func key32(b []byte) (*[KeySize3a]byte, error) {
	if err := checkKey3a(b); err != nil {
		return nil, err
	}
	var k [KeySize3a]byte
	copy(k[:], b)
	return &k, nil
}

// checkKey3a accepts canonical X25519 public keys only: 32 bytes whose
// little-endian value is below 2^255-19. X25519 ignores bit 255 and
// reduces modulo 2^255-19, so a non-canonical key works for the same key
// pair while hashing to another hashname: accepted, it would give one
// peer a second identity. Keys made by X25519 (ours, telehash-js's) are
// always canonical.
func checkKey3a(b []byte) error {
	if len(b) != KeySize3a {
		return fmt.Errorf("%w: 3a key must be %d bytes, got %d", ErrInvalidKey, KeySize3a, len(b))
	}
	if b[31]&0x80 != 0 {
		return fmt.Errorf("%w: 3a key with bit 255 set is not canonical", ErrInvalidKey)
	}
	// 2^255-19 and above: 0x7f, then 30 bytes of 0xff, then >= 0xed.
	if b[31] == 0x7f && b[0] >= 0xed {
		all := true
		for _, c := range b[1:31] {
			all = all && c == 0xff
		}
		if all {
			return fmt.Errorf("%w: 3a key not reduced modulo 2^255-19", ErrInvalidKey)
		}
	}
	return nil
}

// macKey3a derives the message AUTH key SHA256(NONCE || secret) where
// secret = beforenm(remote endpoint key, local endpoint secret) (spec:
// e3x/cs/3a.md "Message BODY").
func macKey3a(nonce []byte, endpointSecret *[32]byte) *[32]byte {
	h := sha256.New()
	h.Write(nonce)
	h.Write(endpointSecret[:])
	var k [32]byte
	h.Sum(k[:0])
	return &k
}

// SealMessage3a encrypts a message BODY to remoteKey (spec: e3x/cs/3a.md
// "Message BODY"): EPH || NONCE || secretbox(inner, NONCE, beforenm(remote,
// ephSecret)) || poly1305(all previous bytes, SHA256(NONCE ||
// beforenm(remote, localSecret))). eph is the exchange's ephemeral key
// pair, kept for the exchange's lifetime so the first 16 bytes stay stable
// (spec: e3x/messages.md "Stable Prefix"). rnd supplies the nonce.
func SealMessage3a(rnd io.Reader, local, eph *Keypair, remoteKey []byte, inner []byte) ([]byte, error) {
	remote, err := key32(remoteKey)
	if err != nil {
		return nil, err
	}
	secret, err := beforenm(remote, &eph.Secret)
	if err != nil {
		return nil, err
	}
	endpoint, err := beforenm(remote, &local.Secret)
	if err != nil {
		return nil, err
	}
	return sealMessage3aWith(rnd, &eph.Public, &secret, &endpoint, inner)
}

// sealMessage3aWith is SealMessage3a with both shared secrets computed
// already (an exchange caches them: no X25519 per handshake).
func sealMessage3aWith(rnd io.Reader, ephPublic, secret, endpoint *[32]byte, inner []byte) ([]byte, error) {
	n := MessageOverhead3a + len(inner)
	if n > MaxPacketSize {
		return nil, fmt.Errorf("%w: message of %d bytes", ErrTooLarge, n)
	}
	var nonce [NonceSize3a]byte
	if _, err := io.ReadFull(rnd, nonce[:]); err != nil {
		return nil, fmt.Errorf("telehash: message nonce: %w", err)
	}
	body := make([]byte, 0, n)
	body = append(body, ephPublic[:]...)
	body = append(body, nonce[:]...)
	body = secretbox.Seal(body, inner, &nonce, secret)
	var mac [MACSize3a]byte
	poly1305.Sum(&mac, body, macKey3a(nonce[:], endpoint))
	return append(body, mac[:]...), nil
}

// OpenMessage3a decrypts a message BODY with the local endpoint secret
// (spec: e3x/cs/3a.md "Message BODY") and returns the inner bytes and the
// sender's ephemeral key. The AUTH value is not checked here: it needs the
// sender's endpoint key, usually found inside the inner packet; call
// VerifyMessage3a before trusting the result.
func OpenMessage3a(local *Keypair, body []byte) (inner []byte, eph [KeySize3a]byte, err error) {
	inner, eph, _, err = openMessage3a(local, body)
	return inner, eph, err
}

// openMessage3a is OpenMessage3a, also returning the shared secret
// beforenm(eph, local secret), which decrypts later handshakes carrying
// the same ephemeral key without X25519.
func openMessage3a(local *Keypair, body []byte) (inner []byte, eph [KeySize3a]byte, secret [32]byte, err error) {
	if err := checkMessage3a(body); err != nil {
		return nil, eph, secret, err
	}
	copy(eph[:], body[:KeySize3a])
	if err := checkKey3a(eph[:]); err != nil {
		return nil, eph, secret, fmt.Errorf("%w: ephemeral key: %w", ErrDecrypt, err)
	}
	secret, err = beforenm(&eph, &local.Secret)
	if err != nil {
		return nil, eph, secret, fmt.Errorf("%w: ephemeral key: %w", ErrDecrypt, err)
	}
	inner, err = openMessage3aWith(&secret, body)
	return inner, eph, secret, err
}

// checkMessage3a checks the size of a message BODY.
func checkMessage3a(body []byte) error {
	if len(body) > MaxPacketSize {
		return fmt.Errorf("%w: message of %d bytes", ErrTooLarge, len(body))
	}
	if len(body) < MessageOverhead3a {
		return fmt.Errorf("%w: 3a message of %d bytes is shorter than %d", ErrMalformed, len(body), MessageOverhead3a)
	}
	return nil
}

// openMessage3aWith decrypts a message BODY (of a checked size) with the
// shared secret of its ephemeral key.
func openMessage3aWith(secret *[32]byte, body []byte) ([]byte, error) {
	var nonce [NonceSize3a]byte
	copy(nonce[:], body[KeySize3a:KeySize3a+NonceSize3a])
	inner, ok := secretbox.Open(nil, body[KeySize3a+NonceSize3a:len(body)-MACSize3a], &nonce, secret)
	if !ok {
		return nil, fmt.Errorf("%w: 3a message secretbox", ErrDecrypt)
	}
	return inner, nil
}

// VerifyMessage3a checks the AUTH of a message BODY against the sender's
// endpoint key (spec: e3x/cs/3a.md "Message BODY", implementers guide
// "Sender Verification").
func VerifyMessage3a(local *Keypair, remoteKey []byte, body []byte) error {
	if len(body) < MessageOverhead3a || len(body) > MaxPacketSize {
		return fmt.Errorf("%w: 3a message of %d bytes", ErrMalformed, len(body))
	}
	remote, err := key32(remoteKey)
	if err != nil {
		return err
	}
	endpoint, err := beforenm(remote, &local.Secret)
	if err != nil {
		return err
	}
	return verifyMessage3aWith(&endpoint, body)
}

// verifyMessage3aWith checks the AUTH of a message BODY (of a checked
// size) with the endpoint secret beforenm(remote key, local secret).
func verifyMessage3aWith(endpoint *[32]byte, body []byte) error {
	nonce := body[KeySize3a : KeySize3a+NonceSize3a]
	var mac [MACSize3a]byte
	copy(mac[:], body[len(body)-MACSize3a:])
	if !poly1305.Verify(&mac, body[:len(body)-MACSize3a], macKey3a(nonce, endpoint)) {
		return fmt.Errorf("%w: 3a message AUTH", ErrDecrypt)
	}
	return nil
}
