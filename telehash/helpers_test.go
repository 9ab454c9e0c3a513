package telehash

// Helpers only the tests use: E3X conveniences on top of the exported API.

import "fmt"

// remoteKeyBytes returns the remote endpoint's 3a key.
func (x *Exchange) remoteKeyBytes() []byte { return append([]byte(nil), x.remoteKey[:]...) }

// remoteTok returns the remote routing token (put on outgoing channel
// packets) and whether a session exists.
func (x *Exchange) remoteTok() (Token, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.remoteToken, x.session != nil
}

// hasSession reports whether a handshake was accepted.
func (x *Exchange) hasSession() bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.session != nil
}

// setAt sets the at value, adjusted up to the local order's parity, and
// returns the value set.
func (x *Exchange) setAt(at uint64) (uint64, error) {
	a, err := AdjustAt(at, x.order)
	if err != nil {
		return 0, err
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	x.at = a
	return a, nil
}

// receiveHandshake opens a handshake message (uncloaked LOB bytes) and
// applies it with Sync.
func (x *Exchange) receiveHandshake(msg []byte) (*Handshake, SyncResult, error) {
	h, err := OpenHandshake(x.local, msg)
	if err != nil {
		return nil, SyncResult{}, err
	}
	res, err := x.Sync(h)
	return h, res, err
}

// encryptChannel encodes and encrypts a channel packet.
func (x *Exchange) encryptChannel(cp *ChannelPacket) ([]byte, error) {
	inner, err := cp.EncodeChannelInner()
	if err != nil {
		return nil, err
	}
	return x.SealChannel(inner)
}

// decryptChannel decrypts and decodes a channel packet.
func (x *Exchange) decryptChannel(outer []byte) (*ChannelPacket, error) {
	inner, err := x.OpenChannel(outer)
	if err != nil {
		return nil, err
	}
	return DecodeChannelInner(inner)
}

// channelToken returns the routing token of an outer channel packet, for
// dispatching it to its exchange (telehash-js mesh.receive routes by it).
func channelToken(outer []byte) (Token, error) {
	p, err := DecodePacket(outer)
	if err != nil {
		return Token{}, err
	}
	if len(p.Head) != 0 || len(p.Body) < TokenSize {
		return Token{}, fmt.Errorf("%w: not a channel packet", ErrMalformed)
	}
	return Token(p.Body[:TokenSize]), nil
}

// uncloak removes any number of cloaking rounds (spec: e3x/cloaking.md
// "Once decloaked, the ciphertext should be processed as another packet,
// which may be a raw encrypted packet (0x00) or may be another cloaked
// one"): while the first byte is non-zero, the first 8 bytes are a nonce
// and the rest is ChaCha20 ciphertext. Input whose first byte is already 0
// is returned unchanged with rounds 0 ("Accept both"). The returned packet
// is a fresh copy when rounds > 0, otherwise it aliases b. It is not
// LOB-decoded; pass it to DecodePacket.
func uncloak(b []byte) (packet []byte, rounds int, err error) {
	if len(b) > MaxPacketSize {
		return nil, 0, fmt.Errorf("%w: cloaked packet of %d bytes exceeds %d", ErrTooLarge, len(b), MaxPacketSize)
	}
	if len(b) < 2 {
		return nil, 0, fmt.Errorf("%w: packet of %d bytes", ErrMalformed, len(b))
	}
	if b[0] == 0 {
		return b, 0, nil
	}
	buf := append([]byte(nil), b...)
	for len(buf) > 0 && buf[0] != 0 {
		if len(buf) < minCloakedLen {
			return nil, rounds, fmt.Errorf("%w: cloaked packet of %d bytes too short", ErrMalformed, len(buf))
		}
		c, err := cloakCipher(buf[:CloakNonceSize])
		if err != nil {
			return nil, rounds, err
		}
		buf = buf[CloakNonceSize:]
		c.XORKeyStream(buf, buf)
		rounds++
	}
	return buf, rounds, nil
}

// keypair3a returns a copy of the 3a key pair.
func (id *Identity) keypair3a() Keypair { return id.kp }
