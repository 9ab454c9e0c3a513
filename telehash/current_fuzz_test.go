package telehash

import (
	"bytes"
	"testing"
)

// FuzzOpenCurrent feeds arbitrary handshake messages to the no-X25519
// path that opens handshakes of the current session. Nothing may panic;
// what it accepts must be from the session's peer, with its ephemeral
// key, and agree with OpenHandshake.
func FuzzOpenCurrent(f *testing.F) {
	a, b := mustIdentity(f, "cur-a"), mustIdentity(f, "cur-b")
	r := newDetRand("cur")
	xa, err := NewExchange(r, a, b.kp.Public[:])
	if err != nil {
		f.Fatal(err)
	}
	xb, err := NewExchange(r, b, a.kp.Public[:])
	if err != nil {
		f.Fatal(err)
	}
	ha, _ := xa.Handshake()
	h, err := OpenHandshake(b, ha)
	if err != nil {
		f.Fatal(err)
	}
	if _, err := xb.Sync(h); err != nil {
		f.Fatal(err)
	}
	f.Add(ha)
	xa.Resync()
	ha2, _ := xa.Handshake()
	f.Add(ha2)
	f.Add(append([]byte(nil), ha2[:len(ha2)-1]...))
	f.Fuzz(func(t *testing.T, msg []byte) {
		h, err := xb.openCurrent(msg)
		if err != nil {
			return
		}
		if !bytes.Equal(h.Key, a.kp.Public[:]) || h.Ephemeral != xa.eph.Public || h.Hashname != a.Hashname() {
			t.Fatalf("accepted a handshake not from the session's peer: %+v", h)
		}
		full, err := OpenHandshake(b, msg)
		if err != nil || full.At != h.At || full.Token != h.Token {
			t.Fatalf("openCurrent accepted what OpenHandshake does not agree with: %v", err)
		}
	})
}
