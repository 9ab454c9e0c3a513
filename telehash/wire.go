package telehash

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"

	"golang.org/x/crypto/nacl/secretbox"
)

// MaxDatagramSize is the largest datagram a Mesh sends for a channel
// packet (notes: "Packets <= 1400 bytes") and about the largest it reads:
// anything above maxReadDatagram is dropped unread.
const MaxDatagramSize = 1400

// maxReadDatagram bounds accepted datagrams: our own and telehash-js's stay
// below 1500 bytes; the margin allows for other implementations' headers.
const maxReadDatagram = 2048

// channelOverhead is the wire overhead of a cloaked 3a channel packet
// around its inner LOB: cloak nonce 8, outer LOB length 2, token 16,
// secretbox nonce 24 and tag 16.
const channelOverhead = CloakNonceSize + 2 + TokenSize + NonceSize3a + secretbox.Overhead

// maxInnerSize is the largest inner packet that fits MaxDatagramSize.
const maxInnerSize = MaxDatagramSize - channelOverhead

// cloakKeyCached is SHA-256("telehash"), computed once.
var cloakKeyCached = sha256.Sum256([]byte("telehash"))

// innerPkt is the internal decoded form of a channel inner packet. It
// mirrors ChannelPacket but keeps the stream "frag" flag as a field so the
// hot path allocates no map; Extra never holds "frag" when frag is true.
type innerPkt struct {
	c     uint32
	typ   string
	seq   uint32
	ack   uint32
	miss  []uint32
	end   bool
	err   string
	frag  bool
	extra map[string]json.RawMessage
	body  []byte
	buf   []byte // the decrypted packet body is in (getRecv), if any
}

// channelPacket converts p to the public form (frag back into Extra).
func (p *innerPkt) channelPacket() *ChannelPacket {
	cp := &ChannelPacket{C: p.c, Type: p.typ, Seq: p.seq, Ack: p.ack, Miss: p.miss,
		End: p.end, Err: p.err, Body: p.body}
	if len(p.extra) > 0 || p.frag {
		cp.Extra = make(map[string]json.RawMessage, len(p.extra)+1)
		for k, v := range p.extra {
			cp.Extra[k] = v
		}
		if p.frag {
			cp.Extra["frag"] = json.RawMessage("true")
		}
	}
	return cp
}

// innerFromChannelPacket converts the slow decoder's output.
func innerFromChannelPacket(cp *ChannelPacket) *innerPkt {
	p := &innerPkt{c: cp.C, typ: cp.Type, seq: cp.Seq, ack: cp.Ack, miss: cp.Miss,
		end: cp.End, err: cp.Err, body: cp.Body}
	for k, v := range cp.Extra {
		if k == "frag" && string(v) == "true" {
			p.frag = true
			continue
		}
		if p.extra == nil {
			p.extra = make(map[string]json.RawMessage, len(cp.Extra))
		}
		p.extra[k] = v
	}
	return p
}

// decodeInner decodes a decrypted channel inner packet. Heads made of the
// common fields with plain values take a scanner that allocates nothing
// beyond the miss array; anything else goes to DecodeChannelInner, so
// the result is always what DecodeChannelInner accepts (FuzzDecodeInner
// checks this). The result aliases b.
func decodeInner(b []byte) (*innerPkt, error) {
	if p, ok := decodeInnerFast(b); ok {
		return p, nil
	}
	cp, err := DecodeChannelInner(b)
	if err != nil {
		return nil, err
	}
	return innerFromChannelPacket(cp), nil
}

// jscan is a minimal JSON scanner for channel heads.
type jscan struct {
	b []byte
	i int
}

func (s *jscan) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// byte consumes c after optional whitespace.
func (s *jscan) byte(c byte) bool {
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// str scans a string of printable ASCII without escapes.
func (s *jscan) str() (string, bool) {
	b, ok := s.strBytes()
	return string(b), ok
}

// strBytes is str without the copy: the string's bytes in s.b.
func (s *jscan) strBytes() ([]byte, bool) {
	if !s.byte('"') {
		return nil, false
	}
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return s.b[start : s.i-1], true
		case c < 0x20 || c >= 0x7f || c == '\\':
			return nil, false
		}
		s.i++
	}
	return nil, false
}

// uint32 scans an integer literal 0..MaxUint32 (no sign, fraction,
// exponent or leading zero).
func (s *jscan) uint32() (uint32, bool) {
	s.ws()
	start := s.i
	var v uint64
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		v = v*10 + uint64(s.b[s.i]-'0')
		s.i++
		if s.i-start > 10 {
			return 0, false
		}
	}
	n := s.i - start
	if n == 0 || (n > 1 && s.b[start] == '0') || v > math.MaxUint32 {
		return 0, false
	}
	if s.i < len(s.b) {
		switch s.b[s.i] {
		case '.', 'e', 'E':
			return 0, false
		}
	}
	return uint32(v), true
}

// lit scans true, false or null.
func (s *jscan) lit() (string, bool) {
	s.ws()
	for _, l := range [...]string{"true", "false", "null"} {
		if len(s.b)-s.i >= len(l) && string(s.b[s.i:s.i+len(l)]) == l {
			s.i += len(l)
			return l, true
		}
	}
	return "", false
}

// bool scans true or false.
func (s *jscan) bool() (bool, bool) {
	l, ok := s.lit()
	if !ok || l == "null" {
		return false, false
	}
	return l == "true", true
}

// raw scans a simple value (integer, literal or plain string) and returns
// its bytes.
func (s *jscan) raw() (json.RawMessage, bool) {
	s.ws()
	start := s.i
	if s.i < len(s.b) && s.b[s.i] == '"' {
		if _, ok := s.str(); !ok {
			return nil, false
		}
	} else if _, ok := s.lit(); !ok {
		if _, ok := s.uint32(); !ok {
			return nil, false
		}
	}
	return json.RawMessage(s.b[start:s.i]), true
}

// decodeInnerFast handles the common case of decodeInner; ok is false
// when the slow path must decide.
func decodeInnerFast(b []byte) (*innerPkt, bool) {
	if len(b) < 2 {
		return nil, false
	}
	hl := int(binary.BigEndian.Uint16(b))
	if hl < minJSONHead || hl > len(b)-2 {
		return nil, false
	}
	s := jscan{b: b[2 : 2+hl]}
	p := &innerPkt{body: b[2+hl:]}
	const (
		fC = 1 << iota
		fType
		fSeq
		fAck
		fMiss
		fEnd
		fErr
		fFrag
	)
	var seen int
	if !s.byte('{') {
		return nil, false
	}
	for {
		kb, ok := s.strBytes()
		if !ok || !s.byte(':') {
			return nil, false
		}
		var f int
		switch string(kb) { // no allocation for the known keys

		case "c":
			f = fC
			p.c, ok = s.uint32()
			ok = ok && p.c != 0
		case "type":
			f = fType
			p.typ, ok = s.str()
		case "err":
			f = fErr
			p.err, ok = s.str()
		case "seq":
			f = fSeq
			p.seq, ok = s.uint32()
		case "ack":
			f = fAck
			p.ack, ok = s.uint32()
		case "end":
			f = fEnd
			p.end, ok = s.bool()
		case "frag":
			f = fFrag
			p.frag, ok = s.bool()
		case "miss":
			f = fMiss
			p.miss, ok = s.missArray()
		default:
			key := string(kb)
			var v json.RawMessage
			if v, ok = s.raw(); !ok {
				return nil, false
			}
			if _, dup := p.extra[key]; dup {
				return nil, false
			}
			if p.extra == nil {
				p.extra = make(map[string]json.RawMessage, 2)
			}
			p.extra[key] = v
		}
		if !ok || seen&f != 0 {
			return nil, false
		}
		seen |= f
		if s.byte(',') {
			continue
		}
		if !s.byte('}') {
			return nil, false
		}
		break
	}
	s.ws()
	if s.i != len(s.b) || seen&fC == 0 {
		return nil, false
	}
	if seen&fFrag != 0 && !p.frag {
		// the slow path keeps "frag":false as an extra field
		if _, dup := p.extra["frag"]; dup {
			return nil, false
		}
		if p.extra == nil {
			p.extra = make(map[string]json.RawMessage, 1)
		}
		p.extra["frag"] = json.RawMessage("false")
	}
	return p, true
}

// missArray scans an array of at most MaxMiss uint32 values.
func (s *jscan) missArray() ([]uint32, bool) {
	if !s.byte('[') {
		return nil, false
	}
	out := make([]uint32, 0, 4)
	if s.byte(']') {
		return out, true
	}
	for {
		v, ok := s.uint32()
		if !ok || len(out) == MaxMiss {
			return nil, false
		}
		out = append(out, v)
		if s.byte(',') {
			continue
		}
		return out, s.byte(']')
	}
}

// outHead holds the fields of an outgoing channel inner packet.
type outHead struct {
	c     uint32
	typ   string
	seq   uint32
	ack   uint32
	miss  []uint32 // gaps then capacity; ack is written when miss is set
	end   bool
	err   string
	frag  bool
	extra map[string]json.RawMessage // validated by the caller
}

// appendJSONString appends s as a JSON string.
func appendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			b, _ := marshalJSON(s)
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// appendInner appends the inner LOB packet for h and body to dst.
func appendInner(dst []byte, h *outHead, body []byte) ([]byte, error) {
	if len(h.miss) > MaxMiss { // what no receiver accepts (parseMiss)
		return nil, fmt.Errorf("%w: %d miss entries, at most %d", ErrTooLarge, len(h.miss), MaxMiss)
	}
	start := len(dst)
	dst = append(dst, 0, 0)
	dst = append(dst, `{"c":`...)
	dst = strconv.AppendUint(dst, uint64(h.c), 10)
	if h.typ != "" {
		dst = append(dst, `,"type":`...)
		dst = appendJSONString(dst, h.typ)
	}
	if h.seq > 0 {
		dst = append(dst, `,"seq":`...)
		dst = strconv.AppendUint(dst, uint64(h.seq), 10)
	}
	if h.ack > 0 || len(h.miss) > 0 {
		dst = append(dst, `,"ack":`...)
		dst = strconv.AppendUint(dst, uint64(h.ack), 10)
	}
	if len(h.miss) > 0 {
		dst = append(dst, `,"miss":[`...)
		for i, m := range h.miss {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = strconv.AppendUint(dst, uint64(m), 10)
		}
		dst = append(dst, ']')
	}
	if h.end {
		dst = append(dst, `,"end":true`...)
	}
	if h.err != "" {
		dst = append(dst, `,"err":`...)
		dst = appendJSONString(dst, h.err)
	}
	if h.frag {
		dst = append(dst, `,"frag":true`...)
	}
	if len(h.extra) > 0 {
		keys := make([]string, 0, len(h.extra))
		for k := range h.extra {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			dst = append(dst, ',')
			dst = appendJSONString(dst, k)
			dst = append(dst, ':')
			dst = append(dst, h.extra[k]...)
		}
	}
	dst = append(dst, '}')
	hl := len(dst) - start - 2
	if hl > 0xffff {
		return nil, fmt.Errorf("%w: head of %d bytes", ErrTooLarge, hl)
	}
	binary.BigEndian.PutUint16(dst[start:], uint16(hl))
	return append(dst, body...), nil
}

// validExtra checks app-supplied extra fields.
func validExtra(extra map[string]json.RawMessage) error {
	for k, v := range extra {
		if isReservedChannelField(k) || k == "frag" {
			return fmt.Errorf("%w: Extra field %q is reserved", ErrMalformed, k)
		}
		if !json.Valid(v) {
			return fmt.Errorf("%w: Extra field %q is not JSON", ErrMalformed, k)
		}
	}
	return nil
}
