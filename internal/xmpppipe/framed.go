package xmpppipe

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/internal/xmpp"
)

// maxFrame caps a frame on a bytestream (a telehash packet is far less).
const maxFrame = 64<<10 - 1

// nudges are the delays after a burst of frames at which an empty frame
// is sent. Prosody's proxy65 writes with Nagle's algorithm on: a small
// chunk waits until the receiver acknowledged the one before, and a
// receiver that delays its ACKs (in the hope of a reply to carry them)
// held the tail of a burst that long. An empty frame carries our ACK
// back at once; on Linux the reader also keeps its socket in quickack
// mode (xmpp.AckNow), which acknowledges without waiting for our next write.
var nudges = []time.Duration{5 * time.Millisecond, 50 * time.Millisecond, 250 * time.Millisecond}

// framed carries packets on a TCP stream (a SOCKS5 bytestream): each is
// a 2-byte big-endian length and the bytes; length 0 is padding (the
// initiator's first frame, nudges).
type framed struct {
	c     net.Conn
	ready atomic.Bool          // the peer's first frame arrived (or we activated)
	owner atomic.Pointer[Pipe] // the pipe packets read are delivered as

	wmu  sync.Mutex
	wbuf []byte
	kick chan struct{}
	done chan struct{}
	once sync.Once
}

func newFramed(c net.Conn, ready bool) *framed {
	f := &framed{c: c, kick: make(chan struct{}, 1), done: make(chan struct{})}
	f.ready.Store(ready)
	go f.nudger()
	return f
}

// send writes one frame; the write blocks while the proxy is slow to
// read (TCP flow control).
func (f *framed) send(b []byte) error {
	if len(b) > maxFrame {
		return fmt.Errorf("xmpppipe: frame of %d bytes", len(b))
	}
	f.wmu.Lock()
	f.wbuf = appendFrame(f.wbuf[:0], b)
	_, err := f.c.Write(f.wbuf)
	f.wmu.Unlock()
	if err != nil {
		return fmt.Errorf("xmpppipe: bytestream: %w", err)
	}
	if len(b) > 0 {
		select {
		case f.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

// nudger sends the empty frames of nudges after each burst.
func (f *framed) nudger() {
	for {
		select {
		case <-f.done:
			return
		case <-f.kick:
		}
	burst:
		for _, d := range nudges {
			t := time.NewTimer(d)
			select {
			case <-f.done:
				t.Stop()
				return
			case <-f.kick:
				t.Stop()
				goto burst
			case <-t.C:
				if f.send(nil) != nil {
					return
				}
			}
		}
	}
}

// readLoop delivers the peer's frames until the stream ends.
func (f *framed) readLoop(deliver func([]byte)) error {
	r := bufio.NewReaderSize(xmpp.AckNow(f.c), maxFrame+2)
	return readFrames(r, func() { f.ready.Store(true) }, deliver)
}

// readFrames reads frames from r: seen is called for every frame,
// deliver for every non-empty one (its buffer is reused afterwards).
func readFrames(r io.Reader, seen func(), deliver func([]byte)) error {
	var hdr [2]byte
	buf := make([]byte, maxFrame)
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return err
		}
		seen()
		n := int(binary.BigEndian.Uint16(hdr[:]))
		if n == 0 {
			continue
		}
		if _, err := io.ReadFull(r, buf[:n]); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		deliver(buf[:n])
	}
}

// appendFrame appends b as a frame.
func appendFrame(dst, b []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(b)))
	return append(dst, b...)
}

func (f *framed) close() {
	f.once.Do(func() {
		close(f.done)
		f.c.Close()
	})
}
