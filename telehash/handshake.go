package telehash

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
)

// Order labels the two endpoints of an exchange (spec: e3x/order.md).
type Order uint8

const (
	// Odd is the endpoint with the higher key: odd at values and odd
	// channel ids from 1.
	Odd Order = 1
	// Even is the endpoint with the lower key: even at values and even
	// channel ids from 2.
	Even Order = 2
)

// String returns "odd" or "even".
func (o Order) String() string {
	if o == Even {
		return "even"
	}
	return "odd"
}

// OrderOf returns the local endpoint's order (spec: e3x/order.md "the
// first key that at a given position has a 1 where the other has a 0 is
// the one that has higher order"): Odd when the local key is higher or
// equal byte-wise, Even when the remote key is higher (telehash-js e3x
// bufsort).
func OrderOf(localKey, remoteKey []byte) Order {
	if bytes.Compare(remoteKey, localKey) > 0 {
		return Even
	}
	return Odd
}

// MaxAt is the largest handshake at value accepted or generated: 2^53-1,
// the largest integer telehash-js (JavaScript numbers) keeps exactly. The
// spec allows 64 bits (e3x/handshake.md "Sequencing with at").
const MaxAt = 1<<53 - 1

// AdjustAt returns the smallest value >= at whose last bit matches order
// (spec: e3x/handshake.md "The last bit in the at must always match the
// order value of the sender"; telehash-js x.at increments to fix parity).
func AdjustAt(at uint64, o Order) (uint64, error) {
	if at == 0 {
		at = 1
	}
	if (o == Odd) != (at%2 == 1) {
		at++
	}
	if at > MaxAt {
		return 0, fmt.Errorf("%w: at %d exceeds %d", ErrExhausted, at, uint64(MaxAt))
	}
	return at, nil
}

// HandshakeTypeLink is the only handshake type this package accepts.
const HandshakeTypeLink = "link"

// Handshake is a decrypted, verified link handshake (spec: link.md
// "Handshake", e3x/handshake.md).
type Handshake struct {
	CSID          CSID              // cipher set of the message
	Type          string            // always "link"
	At            uint64            // sequencing value, 1..MaxAt
	Key           []byte            // sender's key for CSID
	Intermediates map[CSID][32]byte // every CSID of the sender, CSID's own included
	Hashname      Hashname          // sender's hashname, from Key and Intermediates
	Ephemeral     [KeySize3a]byte   // sender's exchange ephemeral key (3a)
	Token         Token             // SHA256(body[0:16])[0:16]: put on channel packets to the sender

	// ephSecret is beforenm(Ephemeral, local secret) when known: it
	// decrypts later handshakes of the same exchange without X25519.
	ephSecret *[32]byte
}

// linkHead is the inner JSON head of a link handshake.
type linkHead struct {
	Type string `json:"type"`
	At   uint64 `json:"at"`
}

// EncodeLinkInner builds the inner packet of a link handshake sent over
// csid (spec: link.md "Handshake"; notes "Handshake"):
// LOB({"type":"link","at":N}, LOB({otherCSID: b32(sha256(key)), ...,
// csid: null}, key)).
func EncodeLinkInner(id *Identity, csid CSID, at uint64) ([]byte, error) {
	if at == 0 || at > MaxAt {
		return nil, fmt.Errorf("%w: at %d out of range", ErrMalformed, at)
	}
	key := id.keys[csid]
	if key == nil {
		return nil, fmt.Errorf("%w: identity has no key for %s", ErrUnsupported, csid)
	}
	ims := make(map[string]*string, len(id.keys))
	for c, k := range id.keys {
		if c == csid {
			ims[c.String()] = nil
			continue
		}
		im := Intermediate(k)
		s := Base32Encode(im[:])
		ims[c.String()] = &s
	}
	attach, err := EncodeJSONPacket(ims, key)
	if err != nil {
		return nil, err
	}
	return EncodeJSONPacket(linkHead{Type: HandshakeTypeLink, At: at}, attach)
}

// ParseLinkInner parses the inner packet of a handshake received over
// csid. It checks the type (absent means "link", spec: e3x/handshake.md
// "Message Types"; the old "key" type is unsupported), the at value and
// the attached key and intermediates, and computes the sender's hashname.
// It does not verify the message AUTH: see OpenHandshake.
func ParseLinkInner(csid CSID, inner []byte) (*Handshake, error) {
	p, err := DecodePacket(inner)
	if err != nil {
		return nil, fmt.Errorf("handshake inner: %w", err)
	}
	var head struct {
		Type json.RawMessage `json:"type"`
		At   json.RawMessage `json:"at"`
	}
	if err := p.UnmarshalHead(&head); err != nil {
		return nil, fmt.Errorf("handshake inner: %w", err)
	}
	h := &Handshake{CSID: csid, Type: HandshakeTypeLink}
	if len(head.Type) > 0 && string(head.Type) != "null" {
		if err := json.Unmarshal(head.Type, &h.Type); err != nil {
			return nil, fmt.Errorf("%w: handshake type is not a string", ErrMalformed)
		}
	}
	if h.Type != HandshakeTypeLink {
		return nil, fmt.Errorf("%w: handshake type %q", ErrUnsupported, h.Type)
	}
	if h.At, err = parseUint(head.At, MaxAt); err != nil || h.At == 0 {
		return nil, fmt.Errorf("%w: handshake at %q must be an integer 1..%d", ErrMalformed, head.At, uint64(MaxAt))
	}
	attach, err := DecodePacket(p.Body)
	if err != nil {
		return nil, fmt.Errorf("handshake attachment: %w", err)
	}
	if csid == CS3a {
		if err := checkKey3a(attach.Body); err != nil {
			return nil, err
		}
	}
	if len(attach.Body) == 0 {
		return nil, fmt.Errorf("%w: handshake carries no key", ErrMalformed)
	}
	h.Key = append([]byte(nil), attach.Body...)
	h.Intermediates = map[CSID][32]byte{csid: Intermediate(h.Key)}
	switch {
	case len(attach.Head) == 0:
	case !attach.IsJSON():
		return nil, fmt.Errorf("%w: binary handshake attachment head", ErrMalformed)
	default:
		var ims map[string]json.RawMessage
		if err := attach.UnmarshalHead(&ims); err != nil {
			return nil, fmt.Errorf("handshake attachment: %w", err)
		}
		for s, raw := range ims {
			c, err := ParseCSID(s)
			if err != nil || c == csid {
				continue // telehash-js ignores non-CSID keys; own CSID is implied
			}
			var b32 string
			if err := json.Unmarshal(raw, &b32); err != nil {
				return nil, fmt.Errorf("%w: intermediate %s is not a string", ErrMalformed, s)
			}
			im, err := Base32Decode(b32)
			if err != nil || len(im) != 32 {
				return nil, fmt.Errorf("%w: intermediate %s is not a base32 digest", ErrMalformed, s)
			}
			h.Intermediates[c] = [32]byte(im)
		}
	}
	if h.Hashname, err = HashnameFromIntermediates(h.Intermediates); err != nil {
		return nil, err
	}
	return h, nil
}

// parseUint parses a JSON integer literal in 0..max.
func parseUint(raw json.RawMessage, max uint64) (uint64, error) {
	v, err := strconv.ParseUint(string(raw), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %q is not an unsigned integer", ErrMalformed, raw)
	}
	if v > max {
		return 0, fmt.Errorf("%w: %d exceeds %d", ErrMalformed, v, max)
	}
	return v, nil
}

// EncodeMessage wraps a message BODY in its outer packet: a one byte head
// holding the CSID (spec: e3x/messages.md "Packet Encryption").
func EncodeMessage(csid CSID, body []byte) ([]byte, error) {
	return EncodePacket([]byte{byte(csid)}, body)
}

// SealHandshake builds a complete link handshake message from local to
// remoteKey over cipher set 3a with the exchange ephemeral key pair eph
// (spec: e3x/handshake.md, link.md "Handshake", e3x/cs/3a.md).
func SealHandshake(rnd io.Reader, local *Identity, eph *Keypair, remoteKey []byte, at uint64) ([]byte, error) {
	inner, err := EncodeLinkInner(local, CS3a, at)
	if err != nil {
		return nil, err
	}
	body, err := SealMessage3a(rnd, &local.kp, eph, remoteKey, inner)
	if err != nil {
		return nil, err
	}
	return EncodeMessage(CS3a, body)
}

// OpenHandshake decrypts, parses and authenticates a handshake message
// (an uncloaked LOB packet with a one byte CSID head) addressed to local
// (spec: e3x/handshake.md, e3x/cs/3a.md "Message BODY"). Only cipher set
// 3a is supported. As telehash-js does, it also rejects a handshake sent
// over a lower cipher set than the best one both sides share.
func OpenHandshake(local *Identity, msg []byte) (*Handshake, error) {
	h, body, err := openHandshakeInner(local, msg)
	if err != nil {
		return nil, err
	}
	if err := h.verify(local, body, nil); err != nil {
		return nil, err
	}
	return h, nil
}

// handshakeBody checks the outer packet of a handshake message and
// returns its 3a message BODY.
func handshakeBody(msg []byte) ([]byte, error) {
	p, err := DecodePacket(msg)
	if err != nil {
		return nil, fmt.Errorf("handshake: %w", err)
	}
	if len(p.Head) != 1 {
		return nil, fmt.Errorf("%w: message head of %d bytes, want 1", ErrMalformed, len(p.Head))
	}
	if csid := CSID(p.Head[0]); csid != CS3a {
		return nil, fmt.Errorf("%w: cipher set %s", ErrUnsupported, csid)
	}
	if err := checkMessage3a(p.Body); err != nil {
		return nil, fmt.Errorf("handshake: %w", err)
	}
	return p.Body, nil
}

// openHandshakeInner decrypts and parses a handshake message (one X25519)
// but does not authenticate it: h.verify must follow. It returns the
// message BODY for verify.
func openHandshakeInner(local *Identity, msg []byte) (*Handshake, []byte, error) {
	body, err := handshakeBody(msg)
	if err != nil {
		return nil, nil, err
	}
	inner, eph, secret, err := openMessage3a(&local.kp, body)
	if err != nil {
		return nil, nil, fmt.Errorf("handshake: %w", err)
	}
	h, err := ParseLinkInner(CS3a, inner)
	if err != nil {
		return nil, nil, err
	}
	h.Ephemeral = eph
	h.ephSecret = &secret
	h.Token, _ = TokenFromBody(body)
	return h, body, nil
}

// verify authenticates a parsed handshake: the message AUTH against the
// sender's key (with endpoint, beforenm(h.Key, local secret), when known,
// else one X25519), and the cipher set choice.
func (h *Handshake) verify(local *Identity, body []byte, endpoint *[32]byte) error {
	var err error
	if endpoint != nil {
		err = verifyMessage3aWith(endpoint, body)
	} else {
		err = VerifyMessage3a(&local.kp, h.Key, body)
	}
	if err != nil {
		return fmt.Errorf("handshake from %s: %w", h.Hashname, err)
	}
	if best := bestCommonCSID(local, h.Intermediates); best != h.CSID {
		return fmt.Errorf("%w: handshake over %s but both sides support %s", ErrUnsupported, h.CSID, best)
	}
	return nil
}

// bestCommonCSID returns the highest CSID present in both sets (spec:
// e3x/cs/README.md "Two endpoints must always create exchanges to each
// other using the highest common CSID"), or 0.
func bestCommonCSID(local *Identity, remote map[CSID][32]byte) CSID {
	ids := local.CSIDs()
	sort.Slice(ids, func(i, j int) bool { return ids[i] > ids[j] })
	for _, c := range ids {
		if _, ok := remote[c]; ok {
			return c
		}
	}
	return 0
}
