package xmpp

import (
	"bytes"
	"encoding/xml"
	"errors"
	"testing"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/git-remote-daemon/git-remote-daemon/telehash"
)

// Keys and hashnames of thnode's addr tests (telehash test vectors).
const (
	tHN   = "nzf4f6j7ylv53z3m4egrwltv2t2yks4rtpaimeg3avwqsoshqxba"
	tKey  = "hp6yglmmqwcbw5hno37uauh6fn6dx5oj7s5vtapaifrur2jv6zha"
	tKey2 = "eg3fxjnjkz763cjfnhyabeftyf75m2s4gll3gvmuacegax5h6nia"
	tKey1 = "vgjz3yjb6cevxjomdleilmzasbj6lcc7"
)

// tHN2 and tIm1a2: a node with a 3a key (tKey2) and a 1a key (tKey1).
var tHN2, tIm1a2 = func() (string, string) {
	hn, err := telehash.HashnameFromParts(map[string]string{"3a": tKey2, "1a": tKey1}, nil)
	if err != nil {
		panic(err)
	}
	im, _ := telehash.Intermediates(map[string]string{"1a": tKey1})
	return string(hn), im["1a"]
}()

func encodePresence(t testing.TB, n Node) []byte {
	var buf bytes.Buffer
	e := xml.NewEncoder(&buf)
	p := stanza.Presence{From: jid.MustParse("alice@example.org/x")}
	if _, err := xmlstream.Copy(e, p.Wrap(presencePayload(n, true))); err != nil {
		t.Fatal(err)
	}
	if err := e.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestPresenceKey(t *testing.T) {
	for _, tc := range []struct {
		name string
		n    Node
		ok   bool
	}{
		{"key", Node{Hashname: tHN, Key: tKey}, true},
		{"key and intermediate", Node{Hashname: tHN2, Key: tKey2, Ims: "1a:" + tIm1a2}, true},
		{"no key (older node)", Node{Hashname: tHN}, true},
		{"another node's key", Node{Hashname: tHN, Key: tKey2}, false},
		{"intermediate left out", Node{Hashname: tHN2, Key: tKey2}, false},
		{"intermediate without key", Node{Hashname: tHN2, Ims: "1a:" + tIm1a2}, false},
		{"3a as intermediate", Node{Hashname: tHN, Key: tKey, Ims: "3a:" + tIm1a2}, false},
		{"twice the same csid", Node{Hashname: tHN2, Key: tKey2, Ims: "1a:" + tIm1a2 + " 1a:" + tIm1a2}, false},
		{"bad key", Node{Hashname: tHN, Key: "!!"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, err := decodeStanza(encodePresence(t, tc.n))
			if err != nil {
				t.Fatal(err)
			}
			got, ok := in.Node.node()
			if ok != tc.ok {
				t.Fatalf("accepted %v, want %v (%v)", ok, tc.ok, tc.n.CheckKey())
			}
			if got != tc.n {
				t.Fatalf("decoded %+v, want %+v", got, tc.n)
			}
			if !tc.ok && tc.n.Key != "" && tc.n.Ims == "" && !errors.Is(tc.n.CheckKey(), ErrKeyMismatch) {
				t.Fatalf("error %v does not wrap ErrKeyMismatch", tc.n.CheckKey())
			}
		})
	}
}

func TestNodeOf(t *testing.T) {
	n := NodeOf(tHN2, map[string]string{"3a": tKey2, "1a": tKey1})
	if n.Key != tKey2 || n.Ims != "1a:"+tIm1a2 || n.CheckKey() != nil {
		t.Fatalf("%+v", n)
	}
	if n := NodeOf(tHN, map[string]string{"3a": tKey}); n.CheckKey() != nil || n.Ims != "" {
		t.Fatalf("%+v: %v", n, n.CheckKey())
	}
}

func FuzzDecodePresence(f *testing.F) {
	f.Add(encodePresence(f, Node{Hashname: tHN, Key: tKey}))
	f.Add(encodePresence(f, Node{Hashname: tHN2, Key: tKey2, Ims: "1a:" + tIm1a2}))
	f.Add(encodePresence(f, Node{Hashname: tHN, Key: tKey2}))
	f.Add(encodePresence(f, Node{Hashname: tHN}))
	f.Add([]byte(`<presence><node xmlns="urn:git-remote-daemon:node:0" hashname="` + tHN + `" cs3a="" ims="1a: :x"/></presence>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		in, err := decodeStanza(b)
		if err != nil {
			return
		}
		n, ok := in.Node.node()
		if !ok {
			return
		}
		if n.Validate() != nil {
			t.Fatalf("accepted a bad hashname: %+v", n)
		}
		in2, err := decodeStanza(encodePresence(t, n))
		if err != nil {
			t.Fatal(err)
		}
		if n2, ok := in2.Node.node(); !ok || n2 != n {
			t.Fatalf("round trip: %+v -> %+v %v", n, n2, ok)
		}
	})
}
