package xmpp

import (
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
)

// socks5Connect runs the client side of the SOCKS5 handshake XEP-0065
// uses (RFC 1928, no authentication, CONNECT to the domain name dst with
// port 0) on c.
func socks5Connect(c net.Conn, dst string) error {
	if len(dst) > 255 {
		return errors.New("xmpp: socks5: destination too long")
	}
	if _, err := c.Write([]byte{5, 1, 0}); err != nil {
		return fmt.Errorf("xmpp: socks5 greeting: %w", err)
	}
	var rep [2]byte
	if _, err := io.ReadFull(c, rep[:]); err != nil {
		return fmt.Errorf("xmpp: socks5 method: %w", err)
	}
	if rep[0] != 5 || rep[1] != 0 {
		return fmt.Errorf("xmpp: socks5: proxy refused the method (%x)", rep)
	}
	req := append([]byte{5, 1, 0, 3, byte(len(dst))}, dst...)
	req = append(req, 0, 0)
	if _, err := c.Write(req); err != nil {
		return fmt.Errorf("xmpp: socks5 connect: %w", err)
	}
	return readSocks5Reply(c)
}

// readSocks5Reply reads a CONNECT reply: VER REP RSV ATYP ADDR PORT.
func readSocks5Reply(r io.Reader) error {
	var h [4]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return fmt.Errorf("xmpp: socks5 reply: %w", err)
	}
	if h[0] != 5 {
		return fmt.Errorf("xmpp: socks5 reply: version %d", h[0])
	}
	if h[1] != 0 {
		return fmt.Errorf("xmpp: socks5: proxy answered %d to connect", h[1])
	}
	var n int
	switch h[3] {
	case 1:
		n = 4
	case 4:
		n = 16
	case 3:
		var l [1]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return fmt.Errorf("xmpp: socks5 reply: %w", err)
		}
		n = int(l[0])
	default:
		return fmt.Errorf("xmpp: socks5 reply: address type %d", h[3])
	}
	if _, err := io.ReadFull(r, make([]byte, n+2)); err != nil {
		return fmt.Errorf("xmpp: socks5 reply: %w", err)
	}
	return nil
}

// streamHash is the SOCKS5 destination of a bytestream (XEP-0065 5.3.2):
// hex SHA-1 of SID, initiator JID and target JID.
func streamHash(sid, initiator, target string) string {
	h := sha1.Sum([]byte(sid + initiator + target))
	return hex.EncodeToString(h[:])
}
