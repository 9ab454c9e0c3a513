// Package pairing pairs two nodes over telehash without anyone pasting
// th:: URLs: one side opens an invitation and shows a one-line code (its
// key, the paths it listens on and a one-time secret), the other side
// joins with the code, and each adds a remote naming the other.
//
// The code's secret never crosses the network: the joiner proves it
// knows it with an HMAC bound to both hashnames, over the telehash
// session the code's key authenticates. An invitation admits strangers'
// handshakes while it is open, and they may open the pair service only;
// it is consumed by the first proof, right or wrong, ends when it
// expires, and lives only in the inviter's memory.
package pairing

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/git-remote-daemon/git-remote-daemon/internal/thnode"
	"github.com/git-remote-daemon/git-remote-daemon/telehash"
)

// CodePrefix starts every code of this version.
const CodePrefix = "grd1-"

// SecretSize is the size of a code's secret in bytes.
const SecretSize = 16

// MaxPaths bounds the paths a code carries.
const MaxPaths = 8

const (
	keySize   = 32 // a cipher set 3a public key
	pathSize  = 6  // IPv4 address and port
	checkSize = 3  // catches a mistyped code before any network use
	maxCode   = len(CodePrefix) + ((keySize+SecretSize+MaxPaths*pathSize+checkSize)*8+4)/5
)

// ErrBadCode is wrapped by every error of ParseCode.
var ErrBadCode = errors.New("bad pairing code")

// Code is what the inviter shows and the joiner types: the inviter's
// cipher set 3a key (its hashname follows from it), the UDP paths it
// listens on, and the invitation's secret.
//
// Its text is CodePrefix followed by lowercase base32 (RFC 4648, no
// padding) of key (32 bytes) | secret (16) | paths (4-byte IPv4 address
// and big-endian port, each) | the first 3 bytes of SHA-256 over
// CodePrefix and the bytes before them. With one path it has 97
// characters.
type Code struct {
	Key    [keySize]byte
	Secret [SecretSize]byte
	Paths  []netip.AddrPort
}

// String renders the code.
func (c Code) String() string {
	b := c.payload()
	return CodePrefix + telehash.Base32Encode(append(b, checksum(b)...))
}

func (c Code) payload() []byte {
	b := make([]byte, 0, keySize+SecretSize+len(c.Paths)*pathSize)
	b = append(b, c.Key[:]...)
	b = append(b, c.Secret[:]...)
	for _, p := range c.Paths {
		ip := p.Addr().As4()
		b = append(b, ip[:]...)
		b = append(b, byte(p.Port()>>8), byte(p.Port()))
	}
	return b
}

func checksum(payload []byte) []byte {
	h := sha256.New()
	h.Write([]byte(CodePrefix))
	h.Write(payload)
	return h.Sum(nil)[:checkSize]
}

// ParseCode parses a code, in either letter case, with surrounding
// spaces ignored.
func ParseCode(s string) (Code, error) {
	var c Code
	s = strings.TrimSpace(s)
	if len(s) > maxCode {
		return c, fmt.Errorf("%w: %d characters, too long", ErrBadCode, len(s))
	}
	rest, ok := cutPrefixFold(s, CodePrefix)
	if !ok {
		return c, fmt.Errorf("%w: it does not start with %q", ErrBadCode, CodePrefix)
	}
	b, err := telehash.Base32Decode(rest)
	if err != nil {
		return c, fmt.Errorf("%w: mistyped (%v)", ErrBadCode, err)
	}
	n := len(b) - keySize - SecretSize - checkSize
	if n < pathSize || n%pathSize != 0 {
		return c, fmt.Errorf("%w: mistyped (%d bytes)", ErrBadCode, len(b))
	}
	payload, sum := b[:len(b)-checkSize], b[len(b)-checkSize:]
	if !bytes.Equal(sum, checksum(payload)) {
		return c, fmt.Errorf("%w: mistyped (its checksum does not match)", ErrBadCode)
	}
	copy(c.Key[:], payload)
	copy(c.Secret[:], payload[keySize:])
	for p := payload[keySize+SecretSize:]; len(p) > 0; p = p[pathSize:] {
		ap := netip.AddrPortFrom(netip.AddrFrom4([4]byte(p[:4])), uint16(p[4])<<8|uint16(p[5]))
		if ap.Port() == 0 || ap.Addr().IsUnspecified() {
			return c, fmt.Errorf("%w: path %s cannot be reached", ErrBadCode, ap)
		}
		c.Paths = append(c.Paths, ap)
	}
	if _, err := c.Addr(); err != nil {
		return Code{}, err
	}
	return c, nil
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return s, false
	}
	return s[len(prefix):], true
}

// Addr is the inviter's th:: address: hashname, key and paths.
func (c Code) Addr() (thnode.Addr, error) {
	keys := map[string]string{"3a": telehash.Base32Encode(c.Key[:])}
	hn, err := telehash.HashnameFromBase32Keys(keys)
	if err != nil {
		return thnode.Addr{}, fmt.Errorf("%w: key: %v", ErrBadCode, err)
	}
	return thnode.Addr{Hashname: hn, Keys: keys, Paths: append([]netip.AddrPort(nil), c.Paths...)}, nil
}

// NewCode makes the code for addr (which must carry a cipher set 3a key
// and 1 to MaxPaths IPv4 paths) with secret.
func NewCode(addr thnode.Addr, secret [SecretSize]byte) (Code, error) {
	c := Code{Secret: secret}
	key, err := telehash.Base32Decode(addr.Keys["3a"])
	if err != nil || len(key) != keySize {
		return c, fmt.Errorf("the node has no cipher set 3a key")
	}
	copy(c.Key[:], key)
	for _, p := range addr.Paths {
		if p.Addr().Is4() && !p.Addr().IsUnspecified() && p.Port() != 0 && len(c.Paths) < MaxPaths {
			c.Paths = append(c.Paths, p)
		}
	}
	if len(c.Paths) == 0 {
		return c, fmt.Errorf("the node listens on no IPv4 address others can reach (%v)", addr.Paths)
	}
	return c, nil
}
