package telehash

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
)

// MaxChannelPacketSize is the recommended maximum size of a channel packet
// (spec: e3x/channels.md "Packet Size Default"). It is advisory: sizes are
// only hard-capped at MaxPacketSize.
const MaxChannelPacketSize = 1400

// MaxMiss caps the entries of a received "miss" array (telehash-js keeps a
// 50 packet input buffer, so its arrays stay far shorter).
const MaxMiss = 1024

// ChannelPacket is a decrypted channel packet (spec: e3x/channels.md
// "Decrypted Packets", e3x/reliable.md). Zero values mean "absent":
// Seq 0 = no seq, Ack 0 with no Miss = no ack, empty Type/Err = none.
// Extra holds any other JSON fields (channel type specific, such as
// "paths"); Body is the binary body.
type ChannelPacket struct {
	C     uint32   // channel id, 1..2^32-1
	Type  string   // only on the open packet
	Seq   uint32   // reliable: sequence of this content packet
	Ack   uint32   // reliable: highest seq processed
	Miss  []uint32 // reliable: delta-encoded missing seqs, last = capacity
	End   bool     // last content packet
	Err   string   // channel error, closes at once
	Extra map[string]json.RawMessage
	Body  []byte
}

// isReservedChannelField reports whether ChannelPacket models field k.
func isReservedChannelField(k string) bool {
	switch k {
	case "c", "type", "seq", "ack", "miss", "end", "err":
		return true
	}
	return false
}

// EncodeChannelInner encodes the packet as the inner LOB of a channel
// packet (spec: e3x/channels.md "Packet Encryption": the inner packet
// always has a JSON head). "ack" is written when Ack > 0 or Miss is set,
// as telehash-js does ("ack":0 with a miss).
func (cp *ChannelPacket) EncodeChannelInner() ([]byte, error) {
	if cp.C == 0 {
		return nil, fmt.Errorf("%w: channel id 0", ErrMalformed)
	}
	head := make(map[string]any, len(cp.Extra)+7)
	for k, v := range cp.Extra {
		if isReservedChannelField(k) {
			return nil, fmt.Errorf("%w: Extra field %q is reserved", ErrMalformed, k)
		}
		if !json.Valid(v) {
			return nil, fmt.Errorf("%w: Extra field %q is not JSON", ErrMalformed, k)
		}
		head[k] = v
	}
	head["c"] = cp.C
	if cp.Type != "" {
		head["type"] = cp.Type
	}
	if cp.Seq > 0 {
		head["seq"] = cp.Seq
	}
	if cp.Ack > 0 || len(cp.Miss) > 0 {
		head["ack"] = cp.Ack
	}
	if len(cp.Miss) > 0 {
		head["miss"] = cp.Miss
	}
	if cp.End {
		head["end"] = true
	}
	if cp.Err != "" {
		head["err"] = cp.Err
	}
	return EncodeJSONPacket(head, cp.Body)
}

// DecodeChannelInner parses a decrypted channel inner packet (spec:
// e3x/channels.md "Decrypted Packets"). The head must be a JSON object
// with a valid "c"; known fields must have their JSON types. The result's
// Body and Extra alias b.
func DecodeChannelInner(b []byte) (*ChannelPacket, error) {
	p, err := DecodePacket(b)
	if err != nil {
		return nil, fmt.Errorf("channel packet: %w", err)
	}
	var fields map[string]json.RawMessage
	if err := p.UnmarshalHead(&fields); err != nil {
		return nil, fmt.Errorf("channel packet: %w", err)
	}
	cp := &ChannelPacket{Body: p.Body}
	c, ok := fields["c"]
	if !ok {
		return nil, fmt.Errorf("%w: channel packet without c", ErrMalformed)
	}
	v, err := parseUint(c, math.MaxUint32)
	if err != nil || v == 0 {
		return nil, fmt.Errorf("%w: channel id %s must be 1..%d", ErrMalformed, c, uint32(math.MaxUint32))
	}
	cp.C = uint32(v)
	for k, raw := range fields {
		switch k {
		case "c":
		case "type":
			err = decodeString(raw, &cp.Type)
		case "err":
			err = decodeString(raw, &cp.Err)
		case "end":
			err = json.Unmarshal(raw, &cp.End)
		case "seq":
			cp.Seq, err = parseUint32(raw)
		case "ack":
			cp.Ack, err = parseUint32(raw)
		case "miss":
			cp.Miss, err = parseMiss(raw)
		default:
			if cp.Extra == nil {
				cp.Extra = make(map[string]json.RawMessage)
			}
			cp.Extra[k] = raw
		}
		if err != nil {
			return nil, fmt.Errorf("%w: channel field %q: %v", ErrMalformed, k, err)
		}
	}
	return cp, nil
}

func decodeString(raw json.RawMessage, s *string) error {
	if string(raw) == "null" {
		return fmt.Errorf("null")
	}
	return json.Unmarshal(raw, s)
}

func parseUint32(raw json.RawMessage) (uint32, error) {
	v, err := parseUint(raw, math.MaxUint32)
	return uint32(v), err
}

// parseMiss decodes a miss array of at most MaxMiss unsigned integers.
func parseMiss(raw json.RawMessage) ([]uint32, error) {
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		return nil, err
	}
	if elems == nil {
		return nil, fmt.Errorf("miss is not an array")
	}
	if len(elems) > MaxMiss {
		return nil, fmt.Errorf("%d entries exceed %d", len(elems), MaxMiss)
	}
	out := make([]uint32, len(elems))
	for i, e := range elems {
		v, err := parseUint32(e)
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
		out[i] = v
	}
	return out, nil
}

// String summarises the packet's JSON fields for logs.
func (cp *ChannelPacket) String() string {
	s := "c=" + strconv.FormatUint(uint64(cp.C), 10)
	if cp.Type != "" {
		s += " type=" + strconv.Quote(cp.Type)
	}
	if cp.Seq > 0 {
		s += " seq=" + strconv.FormatUint(uint64(cp.Seq), 10)
	}
	if cp.Ack > 0 || len(cp.Miss) > 0 {
		s += fmt.Sprintf(" ack=%d", cp.Ack)
	}
	if len(cp.Miss) > 0 {
		s += fmt.Sprintf(" miss=%v", cp.Miss)
	}
	if cp.End {
		s += " end"
	}
	if cp.Err != "" {
		s += " err=" + strconv.Quote(cp.Err)
	}
	return s + fmt.Sprintf(" body=%d", len(cp.Body))
}
