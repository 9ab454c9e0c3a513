package xmpp

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"mellium.im/xmlstream"

	"github.com/git-remote-daemon/git-remote-daemon/telehash"
)

// Namespaces of the project's own elements.
const (
	// NSNode is the presence payload that marks a resource as a node of
	// git-remote-daemon: <node xmlns=NSNode hashname="..." cs3a="..."
	// ims="1a:... 2a:..."/> (cs3a: the node's 3a key, base32; ims: the
	// intermediates of its other keys, if any; nodes of before first
	// contact leave both out).
	NSNode = "urn:git-remote-daemon:node:0"
	// NSDatagram carries one opaque datagram, base64, in a <message>:
	// <d xmlns=NSDatagram>...</d>.
	NSDatagram = "urn:git-remote-daemon:datagram:0"
	nsHints    = "urn:xmpp:hints"
)

// MaxDatagram is the largest datagram Send accepts and the handler
// decodes (telehash packets are below 1.5 KB; Prosody's stanza limit is
// 256 KiB).
const MaxDatagram = 16 << 10

// ErrDatagramSize reports a datagram above MaxDatagram.
var ErrDatagramSize = errors.New("xmpp: datagram too large")

// Node is what a node announces in its presence.
type Node struct {
	// Hashname is the node's telehash hashname (52 base32 characters).
	Hashname string
	// Key is its 3a key (base32) and Ims the intermediates of its other
	// cipher sets ("csid:base32" separated by spaces, sorted), from which
	// the hashname is computed: what a first contact pins. Empty from a
	// node of before first contact.
	Key, Ims string
}

var hashnameRE = regexp.MustCompile(`^[a-z2-7]{52}$`)

// Validate reports a malformed hashname.
func (n Node) Validate() error {
	if !hashnameRE.MatchString(n.Hashname) {
		return fmt.Errorf("xmpp: bad hashname %q in node presence", n.Hashname)
	}
	return nil
}

// ErrKeyMismatch is returned by CheckKey for a presence whose key does
// not hash to its hashname.
var ErrKeyMismatch = errors.New("xmpp: node presence: the key does not match the hashname")

// CheckKey reports whether the presence's key (and intermediates) hash to
// its hashname; a presence without a key passes (the hashname alone is
// what a pinned node is recognized by). A presence that fails is ignored.
func (n Node) CheckKey() error {
	if err := n.Validate(); err != nil {
		return err
	}
	if n.Key == "" {
		if n.Ims != "" {
			return fmt.Errorf("%w: intermediates without a key", ErrKeyMismatch)
		}
		return nil
	}
	if len(n.Key) > 1024 || len(n.Ims) > 4096 {
		return fmt.Errorf("%w: too long", ErrKeyMismatch)
	}
	ims := map[string]string{}
	for _, f := range strings.Fields(n.Ims) {
		c, v, ok := strings.Cut(f, ":")
		if _, dup := ims[c]; !ok || dup || c == "3a" {
			return fmt.Errorf("%w: bad intermediate %q", ErrKeyMismatch, f)
		}
		ims[c] = v
	}
	hn, err := telehash.HashnameFromParts(map[string]string{"3a": n.Key}, ims)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrKeyMismatch, err)
	}
	if string(hn) != n.Hashname {
		return fmt.Errorf("%w: %s hashes to %s", ErrKeyMismatch, n.Hashname, hn)
	}
	return nil
}

// NodeOf is the presence of a node of the identity with keys (csid ->
// base32 key, as telehash.Identity.Keys returns them).
func NodeOf(hn string, keys map[string]string) Node {
	n := Node{Hashname: hn, Key: keys["3a"]}
	var ims []string
	for c, k := range keys {
		if c == "3a" {
			continue
		}
		if m, err := telehash.Intermediates(map[string]string{c: k}); err == nil {
			ims = append(ims, c+":"+m[c])
		}
	}
	sort.Strings(ims)
	n.Ims = strings.Join(ims, " ")
	return n
}

// nodeElem is the wire form of Node.
type nodeElem struct {
	XMLName  xml.Name `xml:"urn:git-remote-daemon:node:0 node"`
	Hashname string   `xml:"hashname,attr"`
	Key      string   `xml:"cs3a,attr"`
	Ims      string   `xml:"ims,attr"`
	// Batch is "1" when the node accepts several datagrams per message
	// (NSBatch); older nodes leave it out.
	Batch string `xml:"batch,attr"`
}

// TokenReader encodes n as its presence payload, with batch="1": every
// Session takes batches.
func (n Node) TokenReader() xml.TokenReader { return n.tokenReader(true) }

func (n Node) tokenReader(batch bool) xml.TokenReader {
	attr := []xml.Attr{{Name: xml.Name{Local: "hashname"}, Value: n.Hashname}}
	if n.Key != "" {
		attr = append(attr, xml.Attr{Name: xml.Name{Local: "cs3a"}, Value: n.Key})
	}
	if n.Ims != "" {
		attr = append(attr, xml.Attr{Name: xml.Name{Local: "ims"}, Value: n.Ims})
	}
	if batch {
		attr = append(attr, xml.Attr{Name: xml.Name{Local: "batch"}, Value: "1"})
	}
	return xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Space: NSNode, Local: "node"}, Attr: attr})
}

// datagramReader is the payload of a datagram message: the datagram and
// hints that keep servers from storing or copying it.
func datagramReader(b []byte) xml.TokenReader {
	return xmlstream.MultiReader(
		xmlstream.Wrap(xmlstream.Token(xml.CharData(base64.StdEncoding.EncodeToString(b))),
			xml.StartElement{Name: xml.Name{Space: NSDatagram, Local: "d"}}),
		hints(),
	)
}

// hints keep servers from storing or copying a datagram message.
func hints() xml.TokenReader {
	return xmlstream.MultiReader(
		xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Space: nsHints, Local: "no-store"}}),
		xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Space: nsHints, Local: "no-copy"}}),
	)
}

// inStanza is what the handler reads of any incoming stanza.
type inStanza struct {
	XMLName  xml.Name
	From     string    `xml:"from,attr"`
	To       string    `xml:"to,attr"`
	Type     string    `xml:"type,attr"`
	ID       string    `xml:"id,attr"`
	Datagram *dataElem `xml:"urn:git-remote-daemon:datagram:0 d"`
	Batch    *dataElem `xml:"urn:git-remote-daemon:batch:0 b"`
	Node     *nodeElem `xml:"urn:git-remote-daemon:node:0 node"`
	Roster   *struct{} `xml:"jabber:iq:roster query"`
	// Bytestream is an XEP-0065 offer.
	Bytestream *bsQuery `xml:"http://jabber.org/protocol/bytestreams query"`
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

type dataElem struct {
	Text []byte `xml:",chardata"`
}

// decodeDatagram decodes the base64 text of a <d/> element.
func decodeDatagram(text []byte) ([]byte, error) {
	if base64.StdEncoding.DecodedLen(len(text)) > MaxDatagram+3 {
		return nil, ErrDatagramSize
	}
	b := make([]byte, base64.StdEncoding.DecodedLen(len(text)))
	n, err := base64.StdEncoding.Decode(b, text)
	if err != nil {
		return nil, fmt.Errorf("xmpp: datagram: %w", err)
	}
	if n > MaxDatagram {
		return nil, ErrDatagramSize
	}
	return b[:n], nil
}

// node is the presence's node, nil-safe; ok is false when it is absent
// or fails CheckKey.
func (e *nodeElem) node() (Node, bool) {
	if e == nil {
		return Node{}, false
	}
	n := Node{Hashname: e.Hashname, Key: e.Key, Ims: e.Ims}
	return n, n.CheckKey() == nil
}
