package notify

import (
	"errors"
	"fmt"
	"io"
	"sync"
)

// StreamQueue is how many DATA lines a stream holds that its reader has
// not taken yet (at most StreamQueue*MaxData bytes, 3 MiB). A full queue
// holds up the whole connection until the reader takes some, or closes
// the stream: git reads what it asked for, so this is back pressure, not
// a deadlock.
const StreamQueue = 256

// MaxStreams caps the streams open at once on one connection (as sshd's
// MaxSessions does); an OPEN beyond it is answered with EOF.
const MaxStreams = 32

// ErrStreamClosed is returned by a stream's Read and Write after Close.
var ErrStreamClosed = errors.New("notify: stream closed")

// Stream is one byte stream multiplexed on a notify connection (OPEN,
// DATA, EOF). Read returns io.EOF once the peer sent EOF; CloseWrite
// sends EOF; Close also stops reading, dropping what still arrives.
type Stream struct {
	id   string
	send func(Msg) error // writes one line; safe for concurrent use
	drop func()          // forgets the stream on its connection

	// in carries DATA payloads; only the connection's reader sends on it
	// and closes it (at EOF, or when the connection ends, after setting
	// err).
	in       chan []byte
	inClosed bool // reader's own state: in was closed
	err      error
	pending  []byte

	wmu      sync.Mutex
	wclosed  bool
	gone     chan struct{} // closed by Close
	goneOnce sync.Once
}

func newStream(id string, send func(Msg) error, drop func()) *Stream {
	return &Stream{id: id, send: send, drop: drop, in: make(chan []byte, StreamQueue), gone: make(chan struct{})}
}

// ID is the stream's id on its connection.
func (s *Stream) ID() string { return s.id }

// Read reads what the peer sent.
func (s *Stream) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if len(s.pending) == 0 {
		select {
		case b, ok := <-s.in:
			if !ok {
				if s.err != nil {
					return 0, s.err
				}
				return 0, io.EOF
			}
			s.pending = b
		case <-s.gone:
			return 0, ErrStreamClosed
		}
	}
	n := copy(p, s.pending)
	s.pending = s.pending[n:]
	return n, nil
}

// Write sends p to the peer in DATA lines.
func (s *Stream) Write(p []byte) (int, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.wclosed {
		return 0, ErrStreamClosed
	}
	n := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), MaxData)]
		if err := s.send(Msg{Kind: Data, ID: s.id, Data: chunk}); err != nil {
			return n, err
		}
		n += len(chunk)
		p = p[len(chunk):]
	}
	return n, nil
}

// CloseWrite sends EOF: the peer reads the end of the stream.
func (s *Stream) CloseWrite() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.wclosed {
		return nil
	}
	s.wclosed = true
	return s.send(Msg{Kind: EOF, ID: s.id})
}

// Close sends EOF if not done yet and forgets the stream: what the peer
// still sends on it is dropped.
func (s *Stream) Close() error {
	err := s.CloseWrite()
	s.goneOnce.Do(func() {
		close(s.gone)
		s.drop()
	})
	return err
}

// put hands a DATA payload to the reader, waiting while its queue is
// full unless the stream is closed meanwhile. Called by the connection's
// reader only.
func (s *Stream) put(b []byte) {
	if s.inClosed {
		return // DATA after EOF: the peer broke the protocol; drop it
	}
	select {
	case s.in <- b:
	case <-s.gone:
	}
}

// end ends the reading side with err (nil: EOF). Called by the
// connection's reader only.
func (s *Stream) end(err error) {
	if s.inClosed {
		return
	}
	s.inClosed = true
	s.err = err
	close(s.in)
}

// streams is the set of open streams of one connection.
type streams struct {
	mu sync.Mutex
	m  map[string]*Stream
}

func (ss *streams) get(id string) *Stream {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.m[id]
}

// add registers a new stream; false if the id is taken or max reached.
func (ss *streams) add(s *Stream, max int) error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.m == nil {
		ss.m = map[string]*Stream{}
	}
	if _, dup := ss.m[s.id]; dup {
		return fmt.Errorf("stream %s is open already", s.id)
	}
	if max > 0 && len(ss.m) >= max {
		return fmt.Errorf("too many streams (%d)", max)
	}
	ss.m[s.id] = s
	return nil
}

func (ss *streams) remove(s *Stream) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.m[s.id] == s {
		delete(ss.m, s.id)
	}
}

// endAll ends the reading side of every stream (the connection ended).
// Called by the connection's reader only.
func (ss *streams) endAll(err error) {
	ss.mu.Lock()
	all := make([]*Stream, 0, len(ss.m))
	for _, s := range ss.m {
		all = append(all, s)
	}
	ss.mu.Unlock()
	for _, s := range all {
		s.end(err)
	}
}

// deliver routes DATA or EOF to its stream; lines for a stream that is
// gone are dropped. Called by the connection's reader only.
func (ss *streams) deliver(m Msg) {
	s := ss.get(m.ID)
	if s == nil {
		return
	}
	if m.Kind == Data {
		s.put(m.Data)
	} else {
		s.end(nil)
	}
}
