package xmpp

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/xml"
	"errors"
	"fmt"

	"mellium.im/xmlstream"
)

// NSBatch carries several datagrams in one <message>:
// <b xmlns=NSBatch>BASE64</b>, where the decoded bytes are the datagrams
// one after the other, each a 2-byte big-endian length and its bytes.
// A node that accepts it says so in its presence (batch="1" on its node
// element); others get one datagram per message (<d/>).
const NSBatch = "urn:git-remote-daemon:batch:0"

// Batch sizes. A message's stanza must stay well below what servers
// accept: Prosody 0.12's c2s_stanza_size_limit is 256 KiB by default and
// the max_stanza_size of Debian's ejabberd 23.01 c2s listeners is 262144.
const (
	// maxBatchSend is the most datagram bytes (with their length
	// prefixes) the sender puts in one message: about 22 KB of base64,
	// 13 telehash packets. Prosody's cost is mostly per byte once
	// messages hold several packets (see docs/xmpp.md), and smaller
	// messages wait less behind each other.
	maxBatchSend = 16 << 10
	// MaxBatch is the largest decoded batch the handler accepts (175 KB
	// of base64, still below both servers' limits).
	MaxBatch = 128 << 10
)

// Errors of decodeBatch.
var (
	ErrBatchSize  = errors.New("xmpp: datagram batch too large")
	ErrBatchFrame = errors.New("xmpp: datagram batch cut in a datagram")
)

// appendBatch appends the batch form of pkts (each at most MaxDatagram
// bytes) to dst.
func appendBatch(dst []byte, pkts [][]byte) []byte {
	for _, p := range pkts {
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(p)))
		dst = append(dst, p...)
	}
	return dst
}

// batchLen is the size of pkts in batch form.
func batchLen(pkts [][]byte) int {
	n := 0
	for _, p := range pkts {
		n += 2 + len(p)
	}
	return n
}

// batchReader is the payload of a batch message: the datagrams and the
// hints that keep servers from storing or copying them.
func batchReader(pkts [][]byte) xml.TokenReader {
	raw := appendBatch(make([]byte, 0, batchLen(pkts)), pkts)
	return xmlstream.MultiReader(
		xmlstream.Wrap(xmlstream.Token(xml.CharData(base64.StdEncoding.EncodeToString(raw))),
			xml.StartElement{Name: xml.Name{Space: NSBatch, Local: "b"}}),
		hints(),
	)
}

// decodeBatch decodes the base64 text of a <b/> element into its
// datagrams (which share one buffer). An empty batch is no error.
func decodeBatch(text []byte) ([][]byte, error) {
	if base64.StdEncoding.DecodedLen(len(text)) > MaxBatch+3 {
		return nil, ErrBatchSize
	}
	raw := make([]byte, base64.StdEncoding.DecodedLen(len(text)))
	n, err := base64.StdEncoding.Decode(raw, text)
	if err != nil {
		return nil, fmt.Errorf("xmpp: datagram batch: %w", err)
	}
	if n > MaxBatch {
		return nil, ErrBatchSize
	}
	raw = raw[:n]
	var pkts [][]byte
	for len(raw) > 0 {
		if len(raw) < 2 {
			return nil, ErrBatchFrame
		}
		l := int(binary.BigEndian.Uint16(raw))
		raw = raw[2:]
		if l > MaxDatagram {
			return nil, ErrDatagramSize
		}
		if l > len(raw) {
			return nil, ErrBatchFrame
		}
		pkts = append(pkts, raw[:l:l])
		raw = raw[l:]
	}
	return pkts, nil
}
