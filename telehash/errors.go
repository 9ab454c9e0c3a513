package telehash

import "errors"

// Sentinel error classes. Errors returned by this package wrap one of these
// (test with errors.Is).
var (
	// ErrMalformed reports input that does not follow the wire format.
	ErrMalformed = errors.New("telehash: malformed input")
	// ErrTooLarge reports input or output above a size cap.
	ErrTooLarge = errors.New("telehash: too large")
	// ErrUnsupported reports a valid but unsupported cipher set or type.
	ErrUnsupported = errors.New("telehash: unsupported")
	// ErrDecrypt reports a failed decryption or authentication check.
	ErrDecrypt = errors.New("telehash: decryption or authentication failed")
	// ErrInvalidKey reports a key of the wrong size or a weak key.
	ErrInvalidKey = errors.New("telehash: invalid key")
	// ErrInvalidIdentity reports an identity whose keys or hashname do not agree.
	ErrInvalidIdentity = errors.New("telehash: invalid identity")
	// ErrInsecurePermissions reports an identity file readable by others.
	ErrInsecurePermissions = errors.New("telehash: insecure file permissions")
	// ErrKeyMismatch reports a handshake from another key than the exchange's.
	ErrKeyMismatch = errors.New("telehash: handshake key does not match exchange")
	// ErrNoSession reports channel traffic before any handshake was accepted.
	ErrNoSession = errors.New("telehash: no session (handshake required)")
	// ErrWrongToken reports a channel packet carrying another exchange's token.
	ErrWrongToken = errors.New("telehash: routing token does not match")
	// ErrExhausted reports that channel ids or handshake at values ran out.
	ErrExhausted = errors.New("telehash: value space exhausted")
)
