package telehash

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"unicode/utf8"
)

// normInner normalises an innerPkt for comparison.
func normInner(p *innerPkt) innerPkt {
	q := *p
	if len(q.miss) == 0 {
		q.miss = nil
	}
	if len(q.extra) == 0 {
		q.extra = nil
	}
	if len(q.body) == 0 {
		q.body = nil
	}
	return q
}

func innerSeeds() [][]byte {
	heads := []string{
		`{"c":1,"seq":1,"type":"stream"}`,
		`{"c":3,"seq":7,"ack":5,"miss":[1,2,45],"end":true}`,
		`{"ack":0,"c":1,"miss":[50]}`,
		`{"c":4294967295,"err":"timeout"}`,
		`{"c":2,"frag":true,"seq":9,"ack":3}`,
		`{"c":2,"frag":false}`,
		`{ "c" : 5 , "type":"path","paths":[{"type":"udp4"}] }`,
		`{"c":5,"x":"y","n":12,"b":null}`,
		`{"c":1,"c":2}`,
		`{"c":1,"seq":1.5}`,
		`{"c":1,"seq":01}`,
		`{"c":1,"seq":-1}`,
		`{"c":1,"seq":4294967296}`,
		`{"c":1,"type":"a\"b"}`,
		`{"c":1,"type":"\u00e9"}`,
		`{"c":0}`,
		`{"c":1,"miss":[]}`,
		`{"c":1,"end":null}`,
		`{"c":1} x`,
		`{"c":1,"x":1,"x":2}`,
	}
	var out [][]byte
	for _, h := range heads {
		b, _ := EncodePacket(nil, []byte("body"))
		b = append(be16(len(h)), h...)
		out = append(out, append(b, "body"...))
	}
	return out
}

// FuzzDecodeInner checks that decodeInner (fast path plus fallback)
// accepts exactly what DecodeChannelInner accepts, with the same result.
func FuzzDecodeInner(f *testing.F) {
	for _, s := range innerSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, gerr := decodeInner(b)
		want, werr := DecodeChannelInner(b)
		if (gerr == nil) != (werr == nil) {
			t.Fatalf("decodeInner err %v, DecodeChannelInner err %v", gerr, werr)
		}
		if gerr != nil {
			return
		}
		g, w := normInner(got), normInner(innerFromChannelPacket(want))
		if !reflect.DeepEqual(g, w) {
			t.Fatalf("fast %+v\nslow %+v", g, w)
		}
		// and back to the public form
		cp := got.channelPacket()
		if cp.C != want.C || cp.Seq != want.Seq || cp.End != want.End || !bytes.Equal(cp.Body, want.Body) {
			t.Fatalf("channelPacket %v, want %v", cp, want)
		}
	})
}

func TestDecodeInnerSeeds(t *testing.T) {
	fast := 0
	for _, s := range innerSeeds() {
		if _, ok := decodeInnerFast(s); ok {
			fast++
		}
		got, gerr := decodeInner(s)
		want, werr := DecodeChannelInner(s)
		if (gerr == nil) != (werr == nil) {
			t.Fatalf("%q: %v vs %v", s, gerr, werr)
		}
		if gerr == nil && !reflect.DeepEqual(normInner(got), normInner(innerFromChannelPacket(want))) {
			t.Fatalf("%q: %+v vs %+v", s, got, want)
		}
	}
	if fast < 7 {
		t.Fatalf("only %d seeds took the fast path", fast)
	}
}

// FuzzAppendInner checks that appendInner's output decodes (slow path) to
// the fields given.
func FuzzAppendInner(f *testing.F) {
	f.Add(uint32(1), "stream", uint32(1), uint32(0), []byte{1, 2}, true, "", false, "k", []byte("body"))
	f.Add(uint32(7), "", uint32(0), uint32(9), []byte{}, false, "timeout", true, "", []byte{})
	f.Add(uint32(7), "x\"\n\u00e9", uint32(3), uint32(2), []byte{0}, false, "e\\", true, "a\x00", []byte{})
	f.Fuzz(func(t *testing.T, c uint32, typ string, seq, ack uint32, miss []byte, end bool, errs string, frag bool, key string, body []byte) {
		if c == 0 {
			return
		}
		h := outHead{c: c, typ: typ, seq: seq, ack: ack, end: end, err: errs, frag: frag}
		for _, m := range miss {
			h.miss = append(h.miss, uint32(m)*1000003)
		}
		if key != "" && !isReservedChannelField(key) && key != "frag" {
			h.extra = map[string]json.RawMessage{key: json.RawMessage(`[1,{"a":"b"}]`)}
		}
		b, err := appendInner([]byte("prefix"), &h, body)
		if errors.Is(err, ErrTooLarge) {
			// A head over 64 KiB cannot be framed; only fields that
			// escape to that much may be refused (at most 6 bytes per
			// input byte as \u00XX, 11 per miss entry, 100 for the rest).
			// More than MaxMiss entries are refused too: no receiver
			// accepts them.
			if bound := 6*(len(typ)+len(errs)+len(key)) + 11*len(h.miss) + 100; bound <= 0xffff && len(h.miss) <= MaxMiss {
				t.Fatalf("head refused as too large although at most %d bytes: %v", bound, err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if string(b[:6]) != "prefix" {
			t.Fatal("prefix overwritten")
		}
		cp, err := DecodeChannelInner(b[6:])
		if err != nil {
			t.Fatalf("%s: %v", b[6:], err)
		}
		ip := innerFromChannelPacket(cp)
		wantAck := ack
		if ack == 0 && len(h.miss) == 0 {
			wantAck = 0
		}
		// encoding/json replaces invalid UTF-8 with U+FFFD
		typOK := ip.typ == typ || !utf8.ValidString(typ)
		errOK := ip.err == errs || !utf8.ValidString(errs)
		if ip.c != c || ip.seq != seq || ip.ack != wantAck || ip.end != end || ip.frag != frag ||
			!typOK || !errOK || !bytes.Equal(ip.body, body) || len(ip.miss) != len(h.miss) {
			t.Fatalf("round trip of %+v: %+v (%s)", h, ip, b[6:])
		}
		if h.extra != nil && utf8.ValidString(key) && string(ip.extra[key]) != `[1,{"a":"b"}]` {
			t.Fatalf("extra %q", ip.extra)
		}
	})
}

// FuzzUncloakInPlace checks uncloakInPlace (with and without the
// ChaCha20-Poly1305 fast path) against Uncloak.
func FuzzUncloakInPlace(f *testing.F) {
	r := newDetRand("uncloak")
	for _, n := range []int{2, 10, 64, 65, 200, 1400} {
		p := make([]byte, n)
		r.Read(p)
		p[0] = 0
		for _, rounds := range []int{1, 2, 5} {
			c, _ := Cloak(r, p, rounds)
			f.Add(c)
		}
		f.Add(p)
	}
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > maxReadDatagram {
			return
		}
		want, rounds, werr := uncloak(b)
		for _, spare := range []int{0, cloakSpare} {
			buf := make([]byte, len(b), len(b)+spare)
			copy(buf, b)
			got, gerr := uncloakInPlace(buf)
			if rounds > MaxCloakRounds {
				if gerr == nil {
					t.Fatalf("%d rounds accepted", rounds)
				}
				continue
			}
			if (gerr == nil) != (werr == nil) {
				t.Fatalf("spare %d: %v vs %v", spare, gerr, werr)
			}
			if gerr == nil && !bytes.Equal(got, want) {
				t.Fatalf("spare %d: uncloaked bytes differ", spare)
			}
		}
	})
}

func TestSealChannelDatagram(t *testing.T) {
	a, b := pairExchanges(t)
	for _, n := range []int{0, 1, 63, 64, 65, 1300} {
		inner, _ := appendInner(nil, &outHead{c: 3, seq: 1}, bytes.Repeat([]byte{7}, n))
		d, err := a.sealChannelDatagram(newDetRand("seal"), inner)
		if err != nil {
			t.Fatal(err)
		}
		if len(d) != len(inner)+channelOverhead {
			t.Fatalf("datagram %d bytes for %d inner", len(d), len(inner))
		}
		pkt, rounds, err := uncloak(d)
		if err != nil || rounds != 1 {
			t.Fatalf("uncloak: %d %v", rounds, err)
		}
		got, err := b.OpenChannel(pkt)
		if err != nil || !bytes.Equal(got, inner) {
			t.Fatalf("open: %v", err)
		}
		got, err = b.openChannelFast(pkt)
		if err != nil || !bytes.Equal(got, inner) {
			t.Fatalf("openChannelFast: %v", err)
		}
		pkt[len(pkt)-1] ^= 1
		if _, err := b.openChannelFast(pkt); err == nil {
			t.Fatal("tampered packet opened")
		}
	}
}

// pairExchanges returns two exchanges with sessions to each other.
func pairExchanges(t testing.TB) (*Exchange, *Exchange) {
	t.Helper()
	ida, idb := mustIdentity(t, "pair-a"), mustIdentity(t, "pair-b")
	ka, kb := ida.keypair3a(), idb.keypair3a()
	a, err := NewExchange(newDetRand("xa"), ida, kb.Public[:])
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewExchange(newDetRand("xb"), idb, ka.Public[:])
	if err != nil {
		t.Fatal(err)
	}
	ha, _ := a.Handshake()
	if _, _, err := b.receiveHandshake(ha); err != nil {
		t.Fatal(err)
	}
	hb, _ := b.Handshake()
	if _, _, err := a.receiveHandshake(hb); err != nil {
		t.Fatal(err)
	}
	return a, b
}
