package telehash

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
)

// TokenSize is the size of a routing token.
const TokenSize = 16

// Token is an exchange routing token (spec: e3x/handshake.md "Routing
// Token").
type Token [TokenSize]byte

// TokenFromBody computes SHA256(body[0:16])[0:16] of a message BODY (spec:
// e3x/handshake.md "Routing Token"). For 3a the first 16 bytes are the
// sender's ephemeral key, so this is the token that the sender expects on
// channel packets addressed to it.
func TokenFromBody(body []byte) (Token, error) {
	var t Token
	if len(body) < TokenSize {
		return t, fmt.Errorf("%w: body of %d bytes has no token prefix", ErrMalformed, len(body))
	}
	sum := sha256.Sum256(body[:TokenSize])
	copy(t[:], sum[:TokenSize])
	return t, nil
}

// Equal compares two tokens in constant time.
func (t Token) Equal(o Token) bool { return subtle.ConstantTimeCompare(t[:], o[:]) == 1 }
