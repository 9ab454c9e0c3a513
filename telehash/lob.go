package telehash

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
)

// MaxPacketSize caps every encoded or decoded packet (LOB, cloaked, message
// or channel). It covers the largest UDP datagram; real telehash packets
// stay under 1500 bytes (spec: e3x/channels.md "Packet Size Default").
const MaxPacketSize = 64 * 1024

// minJSONHead is the head length from which a head is JSON (spec: lob.md
// "A LENGTH of 7+ means the HEAD may be a UTF-8 encoded JSON object").
const minJSONHead = 7

// Packet is one decoded LOB packet (spec: lob.md). Head is nil when the
// LENGTH is 0. A head of 1-6 bytes is binary; 7 or more bytes is a JSON
// object. Slices returned by DecodePacket alias its input.
type Packet struct {
	Head []byte
	Body []byte
}

// IsJSON reports whether the head is a JSON object (LENGTH >= 7).
func (p *Packet) IsJSON() bool { return len(p.Head) >= minJSONHead }

// UnmarshalHead decodes a JSON head into v (spec: lob.md "LENGTH / HEAD").
func (p *Packet) UnmarshalHead(v any) error {
	if !p.IsJSON() {
		return fmt.Errorf("%w: packet head is not JSON (%d bytes)", ErrMalformed, len(p.Head))
	}
	if err := json.Unmarshal(p.Head, v); err != nil {
		return fmt.Errorf("%w: packet JSON head: %v", ErrMalformed, err)
	}
	return nil
}

// Encode serialises the packet (spec: lob.md "<LENGTH>[HEAD][BODY]").
func (p *Packet) Encode() ([]byte, error) { return EncodePacket(p.Head, p.Body) }

// isJSONObject reports whether b is a valid JSON object (spec: lob.md "not
// any bare string/bool/number/array value").
func isJSONObject(b []byte) bool {
	t := bytes.TrimLeft(b, " \t\r\n")
	return len(t) > 0 && t[0] == '{' && json.Valid(b)
}

// EncodePacket builds a LOB packet: big-endian uint16 head length, head,
// body (spec: lob.md "Definition"). A head of 7 or more bytes must be a
// JSON object, since a receiver would reject anything else.
func EncodePacket(head, body []byte) ([]byte, error) {
	if len(head) > 0xffff {
		return nil, fmt.Errorf("%w: head of %d bytes", ErrTooLarge, len(head))
	}
	n := 2 + len(head) + len(body)
	if n > MaxPacketSize {
		return nil, fmt.Errorf("%w: packet of %d bytes exceeds %d", ErrTooLarge, n, MaxPacketSize)
	}
	if len(head) >= minJSONHead && !isJSONObject(head) {
		return nil, fmt.Errorf("%w: head of %d bytes is not a JSON object", ErrMalformed, len(head))
	}
	out := make([]byte, 2, n)
	binary.BigEndian.PutUint16(out, uint16(len(head)))
	out = append(out, head...)
	return append(out, body...), nil
}

// marshalJSON encodes v without HTML escaping, as JSON.stringify does.
func marshalJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("telehash: encoding JSON head: %w", err)
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// EncodeJSONPacket marshals v as the JSON head and appends body. As in
// telehash-js lob.encode, a JSON text shorter than 7 bytes (such as "{}")
// is sent as no head at all (spec: lob.md "LENGTH / HEAD").
func EncodeJSONPacket(v any, body []byte) ([]byte, error) {
	head, err := marshalJSON(v)
	if err != nil {
		return nil, err
	}
	if len(head) < minJSONHead {
		head = nil
	}
	return EncodePacket(head, body)
}

// DecodePacket parses a LOB packet (spec: lob.md "Definition"). It fails
// when the packet is shorter than 2 bytes, when LENGTH exceeds the data,
// when the packet exceeds MaxPacketSize, or when a head of 7 or more bytes
// is not a JSON object (telehash-js lob.decode rejects those too, where the
// spec would return the bytes with an error). The result aliases b.
func DecodePacket(b []byte) (*Packet, error) {
	if len(b) > MaxPacketSize {
		return nil, fmt.Errorf("%w: packet of %d bytes exceeds %d", ErrTooLarge, len(b), MaxPacketSize)
	}
	if len(b) < 2 {
		return nil, fmt.Errorf("%w: packet of %d bytes has no length", ErrMalformed, len(b))
	}
	hl := int(binary.BigEndian.Uint16(b))
	if hl > len(b)-2 {
		return nil, fmt.Errorf("%w: head length %d exceeds packet of %d bytes", ErrMalformed, hl, len(b))
	}
	p := &Packet{Body: b[2+hl:]}
	if hl > 0 {
		p.Head = b[2 : 2+hl]
	}
	if hl >= minJSONHead && !isJSONObject(p.Head) {
		return nil, fmt.Errorf("%w: head of %d bytes is not a JSON object", ErrMalformed, hl)
	}
	return p, nil
}
