package telehash

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"
)

// StreamType is the channel type of telehash streams (spec:
// channels/stream.md).
const StreamType = "stream"

// StreamChunk is the body size of stream data packets: the largest that,
// with the longest head ({"c":…,"seq":…,"frag":true}, 47 bytes) and the
// piggybacked ack (ackReserve), keeps the datagram within
// MaxDatagramSize (1400 bytes: 1428 with IPv4 and UDP headers, 1448 with
// IPv6, under the 1500 of Ethernet and the 1492 of PPPoE with room for a
// tunnel's headers). telehash-js sends 1000 byte fragments and accepts
// any size.
const StreamChunk = 1248

// Stream is an io.ReadWriteCloser over a reliable channel, compatible
// with the telehash "stream" channel type (spec: channels/stream.md) as
// telehash-js 0.4.18 implements it: each Write is sent as StreamChunk
// byte packets with "frag":true on all but the last, so a telehash-js
// reader gets one Buffer per Write; received packets are concatenated
// whatever their frag and enc fields (a byte stream). CloseWrite sends
// "end":true (half-close); Read returns io.EOF after the peer's end.
type Stream struct {
	c   *Channel
	ctx context.Context

	rmu  sync.Mutex
	rbuf []byte
	rcur []byte // the buffer rbuf is in, recycled once read (putRecv)
	rerr error

	wmu sync.Mutex
}

// NewStream wraps a reliable channel. ctx bounds every Read and Write
// (cancelling it fails them); Close and CloseWrite are bounded by the
// channel timeout.
func NewStream(ctx context.Context, c *Channel) (*Stream, error) {
	if !c.reliable {
		return nil, fmt.Errorf("%w: stream over an unreliable channel", ErrUnsupported)
	}
	return &Stream{c: c, ctx: ctx}, nil
}

// OpenStream opens a "stream" channel to peer. opts, when not nil, is
// marshalled as the JSON head of the LOB packet attached to the open
// (the stream request telehash-js passes to its onStream handler).
func (m *Mesh) OpenStream(ctx context.Context, peer Hashname, opts any) (*Stream, error) {
	body, err := streamRequest(opts)
	if err != nil {
		return nil, err
	}
	c, err := m.OpenChannel(ctx, peer, StreamType, true, &ChannelPacket{Body: body})
	if err != nil {
		return nil, err
	}
	return NewStream(ctx, c)
}

// streamRequest encodes stream options as a LOB packet.
func streamRequest(opts any) ([]byte, error) {
	if opts == nil {
		return EncodePacket(nil, nil)
	}
	return EncodeJSONPacket(opts, nil)
}

// StreamRequest decodes the options attached to an incoming stream open
// into v (see OpenStream).
func StreamRequest(c *Channel, v any) error {
	p, err := DecodePacket(c.open.Body)
	if err != nil {
		return err
	}
	if !p.IsJSON() {
		return json.Unmarshal([]byte("{}"), v)
	}
	return p.UnmarshalHead(v)
}

// Channel returns the underlying channel.
func (s *Stream) Channel() *Channel { return s.c }

// Read reads stream data; io.EOF follows the peer's end.
func (s *Stream) Read(p []byte) (int, error) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	for len(s.rbuf) == 0 {
		if s.rcur != nil {
			putRecv(s.rcur)
			s.rcur = nil
		}
		if s.rerr != nil {
			return 0, s.rerr
		}
		ip, err := s.c.recv(s.ctx)
		if err != nil {
			if err != io.EOF {
				return 0, err // a context error is not sticky
			}
			s.rerr = err
			continue
		}
		s.rbuf, s.rcur = ip.body, ip.buf
		if ip.end {
			s.rerr = io.EOF
		}
	}
	n := copy(p, s.rbuf)
	s.rbuf = s.rbuf[n:]
	return n, nil
}

// Write sends p, blocking while the send window is full.
func (s *Stream) Write(p []byte) (int, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.c.sendStream(s.ctx, p)
}

// CloseWrite half-closes the stream: it sends end; reading goes on.
func (s *Stream) CloseWrite() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.c.CloseWrite(s.ctx)
}

// Close sends end if needed, stops reading and waits (up to the channel
// timeout) until the peer acknowledged everything written.
func (s *Stream) Close() error { return s.c.Close() }

// Abort fails the stream at once, sending err to the peer.
func (s *Stream) Abort(reason string) { s.c.Abort(reason) }
