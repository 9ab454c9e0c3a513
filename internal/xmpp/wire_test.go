package xmpp

import (
	"bytes"
	"encoding/base64"
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
	if _, err := xmlstream.Copy(e, stanza.Presence{}.Wrap(presencePayload(n, true))); err != nil {
		t.Fatal(err)
	}
	e.Flush()
	in, err := decodeStanza(buf.Bytes())
	if err != nil || in.Node == nil || in.Node.Hashname != n.Hashname || in.Node.Batch != "1" {
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

// encodeBatchMessage renders a batch message as the session sends it.
func encodeBatchMessage(t testing.TB, pkts [][]byte) []byte {
	var buf bytes.Buffer
	e := xml.NewEncoder(&buf)
	msg := stanza.Message{To: jid.MustParse("bob@example.org/x"), Type: stanza.NormalMessage}
	if _, err := xmlstream.Copy(e, msg.Wrap(batchReader(pkts))); err != nil {
		t.Fatal(err)
	}
	if err := e.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestBatchRoundTrip(t *testing.T) {
	for _, sizes := range [][]int{{0}, {0, 0}, {1, 2, 3}, {1200, 1400, 100}, {MaxDatagram, MaxDatagram}} {
		var want [][]byte
		for i, n := range sizes {
			want = append(want, bytes.Repeat([]byte{byte(i), '<', '&'}, n)[:n])
		}
		b := encodeBatchMessage(t, want)
		in, err := decodeStanza(b)
		if err != nil {
			t.Fatal(err)
		}
		if in.Batch == nil || in.Datagram != nil {
			t.Fatalf("%v: no batch element in %.200s", sizes, b)
		}
		got, err := decodeBatch(in.Batch.Text)
		if err != nil || len(got) != len(want) {
			t.Fatalf("%v: %d datagrams, %v", sizes, len(got), err)
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("%v: datagram %d differs", sizes, i)
			}
		}
	}
	enc := func(raw []byte) []byte { return []byte(base64.StdEncoding.EncodeToString(raw)) }
	for name, text := range map[string][]byte{
		"bad base64":       []byte("!!!!"),
		"half a length":    enc([]byte{0}),
		"cut datagram":     enc([]byte{0, 5, 1, 2}),
		"datagram too big": enc(append([]byte{0x40, 0x01}, make([]byte, MaxDatagram+1)...)),
		"batch too big":    enc(make([]byte, MaxBatch+1)),
	} {
		if _, err := decodeBatch(text); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

func FuzzDecodeBatch(f *testing.F) {
	f.Add(encodeBatchMessage(f, [][]byte{[]byte("hello"), nil, []byte("world")}))
	f.Add([]byte(`<message><b xmlns="urn:git-remote-daemon:batch:0">AAVoZWxsbw==</b></message>`))
	f.Add([]byte(`<message><b xmlns="urn:git-remote-daemon:batch:0">AAVoZWw=</b></message>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		in, err := decodeStanza(b)
		if err != nil || in.Batch == nil {
			return
		}
		pkts, err := decodeBatch(in.Batch.Text)
		if err != nil {
			return
		}
		if batchLen(pkts) > MaxBatch {
			t.Fatalf("decoded %d bytes", batchLen(pkts))
		}
		for _, p := range pkts {
			if len(p) > MaxDatagram {
				t.Fatalf("datagram of %d bytes", len(p))
			}
		}
		if len(pkts) == 0 {
			return
		}
		in2, err := decodeStanza(encodeBatchMessage(t, pkts))
		if err != nil {
			t.Fatal(err)
		}
		pkts2, err := decodeBatch(in2.Batch.Text)
		if err != nil || len(pkts2) != len(pkts) {
			t.Fatalf("round trip: %d datagrams, %v", len(pkts2), err)
		}
		for i := range pkts {
			if !bytes.Equal(pkts[i], pkts2[i]) {
				t.Fatalf("round trip: datagram %d differs", i)
			}
		}
	})
}
