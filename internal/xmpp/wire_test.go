package xmpp

import (
	"bytes"
	"encoding/xml"
	"strings"
	"testing"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
)

// encodeMessage renders a datagram message as the session sends it.
func encodeMessage(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	e := xml.NewEncoder(&buf)
	msg := stanza.Message{To: jid.MustParse("bob@example.org/x"), Type: stanza.NormalMessage}
	if _, err := xmlstream.Copy(e, msg.Wrap(datagramReader(b))); err != nil {
		t.Fatal(err)
	}
	if err := e.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// decodeStanza parses a stanza as the handler does.
func decodeStanza(b []byte) (inStanza, error) {
	var in inStanza
	err := xml.NewDecoder(bytes.NewReader(b)).Decode(&in)
	return in, err
}

func TestDatagramRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 2, 3, 1200, MaxDatagram} {
		want := bytes.Repeat([]byte{0xa5, '<', '&'}, n)[:n]
		in, err := decodeStanza(encodeMessage(t, want))
		if err != nil {
			t.Fatal(err)
		}
		if in.Datagram == nil {
			t.Fatalf("%d: no datagram element", n)
		}
		got, err := decodeDatagram(in.Datagram.Text)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%d: %v", n, err)
		}
	}
	big := bytes.Repeat([]byte("QUFB"), MaxDatagram/3+2)
	if _, err := decodeDatagram(big); err == nil {
		t.Fatal("oversized datagram decoded")
	}
	if _, err := decodeDatagram([]byte("!!!")); err == nil {
		t.Fatal("bad base64 decoded")
	}
}

func TestNodeRoundTrip(t *testing.T) {
	n := Node{Hashname: hn(3)}
	var buf bytes.Buffer
	e := xml.NewEncoder(&buf)
	if _, err := xmlstream.Copy(e, stanza.Presence{}.Wrap(presencePayload(n))); err != nil {
		t.Fatal(err)
	}
	e.Flush()
	in, err := decodeStanza(buf.Bytes())
	if err != nil || in.Node == nil || in.Node.Hashname != n.Hashname {
		t.Fatalf("%s: %+v %v", buf.String(), in.Node, err)
	}
	if !strings.Contains(buf.String(), "<priority>-1</priority>") {
		t.Fatalf("no negative priority: %s", buf.String())
	}
	for _, bad := range []string{"", "short", strings.Repeat("A", 52), strings.Repeat("a", 53)} {
		if (Node{Hashname: bad}).Validate() == nil {
			t.Fatalf("bad hashname %q accepted", bad)
		}
	}
}

func FuzzDecodeStanza(f *testing.F) {
	f.Add(encodeMessage(f, []byte("hello")))
	f.Add([]byte(`<presence xmlns="jabber:client" from="a@b/c"><node xmlns="urn:git-remote-daemon:node:0" hashname="x"/></presence>`))
	f.Add([]byte(`<message><d xmlns="urn:git-remote-daemon:datagram:0">!!</d></message>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		in, err := decodeStanza(b)
		if err != nil || in.Datagram == nil {
			return
		}
		d, err := decodeDatagram(in.Datagram.Text)
		if err != nil {
			return
		}
		if len(d) > MaxDatagram {
			t.Fatalf("decoded %d bytes", len(d))
		}
		in2, err := decodeStanza(encodeMessage(t, d))
		if err != nil {
			t.Fatal(err)
		}
		d2, err := decodeDatagram(in2.Datagram.Text)
		if err != nil || !bytes.Equal(d, d2) {
			t.Fatalf("round trip: %v", err)
		}
	})
}
