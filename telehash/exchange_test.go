package telehash

import (
	"bytes"
	"errors"
	"testing"
)

// pair returns two exchanges between fresh identities a and b.
func pair(t *testing.T, seed string) (xa, xb *Exchange, a, b *Identity) {
	t.Helper()
	a, b = mustIdentity(t, seed+"a"), mustIdentity(t, seed+"b")
	r := newDetRand(seed)
	var err error
	if xa, err = NewExchange(r, a, b.kp.Public[:]); err != nil {
		t.Fatal(err)
	}
	if xb, err = NewExchange(r, b, a.kp.Public[:]); err != nil {
		t.Fatal(err)
	}
	return xa, xb, a, b
}

// wire cloaks and uncloaks a packet as the UDP transport would.
func wire(t *testing.T, pkt []byte) []byte {
	t.Helper()
	c, err := Cloak(newDetRand(string(pkt)), pkt, 2)
	if err != nil {
		t.Fatal(err)
	}
	p, _, err := uncloak(c)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestExchangeHandshakeAndChannels(t *testing.T) {
	xa, xb, a, b := pair(t, "hs")
	if xa.Order() == xb.Order() {
		t.Fatal("both sides have the same order")
	}
	if _, err := xa.encryptChannel(&ChannelPacket{C: 1}); !errors.Is(err, ErrNoSession) {
		t.Fatalf("send before handshake: %v", err)
	}
	// A initiates; B answers; A confirms.
	ha, err := xa.Handshake()
	if err != nil {
		t.Fatal(err)
	}
	h, res, err := xb.receiveHandshake(wire(t, ha))
	if err != nil {
		t.Fatal(err)
	}
	if h.Hashname != a.Hashname() || !res.NewSession {
		t.Fatalf("b got %v %+v", h.Hashname, res)
	}
	if !res.InSync {
		hb, _ := xb.Handshake()
		h, res2, err := xa.receiveHandshake(wire(t, hb))
		if err != nil || h.Hashname != b.Hashname() || !res2.NewSession {
			t.Fatalf("a: %v %+v", err, res2)
		}
		if !res2.InSync {
			ha, _ = xa.Handshake()
			if _, res3, err := xb.receiveHandshake(ha); err != nil || !res3.InSync {
				t.Fatalf("b not in sync: %+v %v", res3, err)
			}
		}
	}
	if xa.At() != xb.At() {
		t.Fatalf("at differs: %d %d", xa.At(), xb.At())
	}
	// Tokens: each side's outgoing token is the other's local token.
	if tok, ok := xa.remoteTok(); !ok || tok != xb.Token() {
		t.Fatal("a's remote token is not b's token")
	}
	if tok, ok := xb.remoteTok(); !ok || tok != xa.Token() || !xb.hasSession() {
		t.Fatal("b's remote token is not a's token")
	}
	// Channel packets both ways.
	ca, _ := xa.NextChannelID()
	cb, _ := xb.NextChannelID()
	if ca%2 == cb%2 || !xa.IsLocalChannel(ca) || xa.IsLocalChannel(cb) || !xb.IsLocalChannel(cb) {
		t.Fatalf("channel ids %d %d", ca, cb)
	}
	for i := 0; i < 20; i++ {
		send, recv, c := xa, xb, ca
		if i%2 == 1 {
			send, recv, c = xb, xa, cb
		}
		body := bytes.Repeat([]byte{byte(i)}, 1000)
		out, err := send.encryptChannel(&ChannelPacket{C: c, Type: "test", Seq: uint32(i + 1), Body: body})
		if err != nil {
			t.Fatal(err)
		}
		if len(out) > MaxChannelPacketSize+200 {
			t.Fatalf("packet of %d bytes", len(out))
		}
		if tok, _ := channelToken(out); tok != recv.Token() {
			t.Fatal("ChannelToken")
		}
		got, err := recv.decryptChannel(wire(t, out))
		if err != nil {
			t.Fatal(err)
		}
		if got.C != c || got.Type != "test" || got.Seq != uint32(i+1) || !bytes.Equal(got.Body, body) {
			t.Fatalf("got %v", got)
		}
		// The sender cannot read its own packet (wrong token, wrong key).
		if _, err := send.decryptChannel(out); !errors.Is(err, ErrWrongToken) {
			t.Fatalf("own packet: %v", err)
		}
		bad := append([]byte(nil), out...)
		bad[len(bad)-1] ^= 1
		if _, err := recv.decryptChannel(bad); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("tampered: %v", err)
		}
	}
}

func TestExchangeAtRules(t *testing.T) {
	xa, xb, _, _ := pair(t, "at")
	if _, err := xa.setAt(100); err != nil {
		t.Fatal(err)
	}
	if _, err := xb.setAt(200); err != nil {
		t.Fatal(err)
	}
	if xa.At()%2 != uint64(xa.Order())%2 || xb.At()%2 != uint64(xb.Order())%2 {
		t.Fatal("parity")
	}
	ha, _ := xa.Handshake()
	oldA := ha
	_, res, err := xb.receiveHandshake(ha)
	if err != nil || res.InSync || res.At != xb.At() || xb.At() < 200 {
		t.Fatalf("lower at must be answered with ours: %+v %v", res, err)
	}
	hb, _ := xb.Handshake()
	_, res, err = xa.receiveHandshake(hb)
	if err != nil || res.InSync || xa.At() != xb.At() {
		t.Fatalf("higher at must be adopted: %+v %v", res, err)
	}
	ha, _ = xa.Handshake()
	if _, res, err = xb.receiveHandshake(ha); err != nil || !res.InSync || res.NewSession {
		t.Fatalf("echo must be in sync: %+v %v", res, err)
	}
	// Keepalive: a new at, same session.
	at, _ := xa.Resync()
	if at <= xb.At() || at%2 != uint64(xa.Order())%2 {
		t.Fatalf("resync at %d", at)
	}
	ha, _ = xa.Handshake()
	if _, res, err = xb.receiveHandshake(ha); err != nil || res.InSync || res.NewSession || xb.At() != at {
		t.Fatalf("keepalive: %+v %v", res, err)
	}
	// A replayed old handshake changes nothing and needs no answer; nor
	// does a duplicate of the last one.
	if _, res, err = xb.receiveHandshake(oldA); err != nil || !res.Replay || res.InSync || res.Stale || xb.At() != at {
		t.Fatalf("replay: %+v %v", res, err)
	}
	if _, res, err = xb.receiveHandshake(ha); err != nil || !res.Replay || res.NewSession || xb.At() != at {
		t.Fatalf("replay: %+v %v", res, err)
	}
	if _, err := xa.setAt(MaxAt + 1); !errors.Is(err, ErrExhausted) {
		t.Fatalf("SetAt overflow: %v", err)
	}
}

// A peer that restarts (new ephemeral key) gets a new session, even when
// its at is lower, after one round trip; a replay of a handshake from a
// previous session does not switch sessions.
func TestExchangeRestartAndReplay(t *testing.T) {
	xa, xb, a, b := pair(t, "restart")
	xa.setAt(5000)
	xb.setAt(10)
	old, _ := xa.Handshake()
	syncPair(t, xa, xb)
	cid, _ := xb.NextChannelID()
	cid, _ = xb.NextChannelID()
	if cid <= 2 {
		t.Fatal("ids")
	}
	oldTok, _ := xb.remoteTok()

	// A restarts with a lower at than the session's.
	xa2, _ := NewExchange(newDetRand("restart2"), a, b.kp.Public[:])
	xa2.setAt(20)
	h2, _ := xa2.Handshake()
	_, res, err := xb.receiveHandshake(h2)
	if err != nil || !res.Stale || res.NewSession || res.InSync {
		t.Fatalf("restart first contact: %+v %v", res, err)
	}
	if tok, _ := xb.remoteTok(); tok != oldTok {
		t.Fatal("session switched on a stale at")
	}
	// B answers; A adopts B's fresh at and answers with its new key.
	hb, _ := xb.Handshake()
	if _, res, err = xa2.receiveHandshake(hb); err != nil || !res.NewSession {
		t.Fatalf("a2: %+v %v", res, err)
	}
	h2, _ = xa2.Handshake()
	if _, res, err = xb.receiveHandshake(h2); err != nil || !res.NewSession || !res.InSync {
		t.Fatalf("restart accepted: %+v %v", res, err)
	}
	if tok, _ := xb.remoteTok(); tok != xa2.Token() {
		t.Fatal("new token not used")
	}
	if c, _ := xb.NextChannelID(); c != uint32(xb.Order()) {
		t.Fatalf("channel ids not reset: %d", c)
	}
	// Replaying the first session's handshake changes nothing, and is
	// known as a replay: at is not raised.
	at := xb.At()
	if _, res, err = xb.receiveHandshake(old); err != nil || !res.Replay || res.Stale || xb.At() != at {
		t.Fatalf("replay: %+v %v", res, err)
	}
	if tok, _ := xb.remoteTok(); tok != xa2.Token() {
		t.Fatal("replay switched the session")
	}
	pkt, _ := xa2.encryptChannel(&ChannelPacket{C: 1, Type: "x"})
	if _, err := xb.decryptChannel(pkt); err != nil {
		t.Fatal(err)
	}
}

func syncPair(t *testing.T, xa, xb *Exchange) {
	t.Helper()
	from, to := xa, xb
	for i := 0; i < 4; i++ {
		h, _ := from.Handshake()
		_, res, err := to.receiveHandshake(h)
		if err != nil {
			t.Fatal(err)
		}
		if res.InSync && from.hasSession() {
			return
		}
		from, to = to, from
	}
	t.Fatal("handshake did not converge")
}

func TestExchangeErrors(t *testing.T) {
	xa, xb, _, _ := pair(t, "err")
	c := mustIdentity(t, "c")
	xc, _ := NewExchange(nil, c, xb.local.kp.Public[:])
	hc, _ := xc.Handshake()
	if _, _, err := xb.receiveHandshake(hc); !errors.Is(err, ErrKeyMismatch) {
		t.Fatalf("other key: %v", err)
	}
	if _, err := NewExchange(nil, c, make([]byte, 31)); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("short key: %v", err)
	}
	if _, err := NewExchange(nil, c, make([]byte, 32)); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("zero key: %v", err)
	}
	if _, err := xb.Sync(&Handshake{CSID: CS3a, Key: xa.local.kp.Public[:]}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("at 0: %v", err)
	}
	if _, err := xb.OpenChannel([]byte{0, 1, 0x3a}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("head: %v", err)
	}
	if _, err := xb.OpenChannel([]byte{0, 0, 1}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short: %v", err)
	}
	tok := xb.Token()
	if _, err := xb.OpenChannel(append([]byte{0, 0}, tok[:]...)); !errors.Is(err, ErrNoSession) {
		t.Fatalf("no session: %v", err)
	}
	if _, err := channelToken([]byte{0, 1, 2}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("ChannelToken: %v", err)
	}
	if !bytes.Equal(xb.remoteKeyBytes(), xa.local.kp.Public[:]) {
		t.Fatal("RemoteKey")
	}
	// Channel id exhaustion.
	xa.nextCID = 1<<32 - 1
	if c, err := xa.NextChannelID(); err != nil || c != 1<<32-1 {
		t.Fatalf("last id: %d %v", c, err)
	}
	if _, err := xa.NextChannelID(); !errors.Is(err, ErrExhausted) {
		t.Fatalf("exhausted: %v", err)
	}
}

func FuzzExchangeDecryptChannel(f *testing.F) {
	a, b := mustIdentity(f, "fa"), mustIdentity(f, "fb")
	r := newDetRand("fuzz-x")
	xa, _ := NewExchange(r, a, b.kp.Public[:])
	xb, _ := NewExchange(r, b, a.kp.Public[:])
	xa.setAt(1)
	xb.setAt(1)
	ha, _ := xa.Handshake()
	hb, _ := xb.Handshake()
	if _, _, err := xb.receiveHandshake(ha); err != nil {
		f.Fatal(err)
	}
	if _, _, err := xa.receiveHandshake(hb); err != nil {
		f.Fatal(err)
	}
	for _, cp := range []ChannelPacket{{C: 1, Type: "x", Seq: 1, Body: []byte("hi")}, {C: 3, Miss: []uint32{50}}} {
		pkt, err := xa.encryptChannel(&cp)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(pkt)
	}
	f.Add(ha)
	f.Fuzz(func(t *testing.T, pkt []byte) {
		if cp, err := xb.decryptChannel(pkt); err == nil && cp.C == 0 {
			t.Fatal("c=0 accepted")
		}
		// Handshake path of the same exchange: must never panic.
		_, _, _ = xb.receiveHandshake(pkt)
	})
}

func TestExchangeConcurrent(t *testing.T) {
	a, b := mustIdentity(t, "ca"), mustIdentity(t, "cb")
	xa, _ := NewExchange(nil, a, b.kp.Public[:])
	xb, _ := NewExchange(nil, b, a.kp.Public[:])
	syncPair(t, xa, xb)
	done := make(chan error, 8)
	for g := 0; g < 8; g++ {
		go func() {
			for i := 0; i < 50; i++ {
				c, err := xa.NextChannelID()
				if err != nil {
					done <- err
					return
				}
				pkt, err := xa.encryptChannel(&ChannelPacket{C: c, Type: "t"})
				if err != nil {
					done <- err
					return
				}
				if _, err := xb.decryptChannel(pkt); err != nil {
					done <- err
					return
				}
				xa.Resync()
				xb.At()
			}
			done <- nil
		}()
	}
	for g := 0; g < 8; g++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}
