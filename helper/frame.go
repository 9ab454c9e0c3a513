package helper

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// The frame protocol carries one git service session (git upload-pack or
// git receive-pack) over any reliable, ordered, bidirectional byte stream.
//
// Every frame is a 5-byte header followed by a payload:
//
//	type    1 byte   one of the Type constants
//	length  4 bytes  payload length, big-endian uint32
//	payload length bytes
//
// A conversation, helper (git's side) to server (the served repository):
//
//	helper -> server  REQUEST                 service, GIT_PROTOCOL, path
//	server -> helper  ERROR                   request refused; server closes
//	server -> helper  READY                   the service is running
//	helper -> server  DATA* EOF?              git's bytes; EOF: git stopped writing
//	server -> helper  (DATA | STDERR)* EXIT   the service's stdout, stderr, status
//
// The stream ending (or failing) without an EOF frame means the peer
// vanished: the server then kills the service instead of closing its stdin.

// Type is a frame's type byte.
type Type byte

// Frame types. ASCII letters, so a hex dump of a session reads easily.
const (
	TypeRequest Type = 'R' // helper -> server: which service to run
	TypeReady   Type = 'K' // server -> helper: service started
	TypeData    Type = 'D' // either way: a chunk of the service's stdin or stdout
	TypeEOF     Type = 'E' // helper -> server: no more DATA (half close)
	TypeStderr  Type = 'S' // server -> helper: the service's stderr, for the user
	TypeExit    Type = 'X' // server -> helper: the service's exit status; last frame
	TypeError   Type = '!' // server -> helper: request refused or session failed
)

// Size limits. A decoder refuses a larger frame before reading its payload.
const (
	HeaderSize      = 5
	MaxData         = 64 << 10 // DATA and STDERR payloads
	MaxRequest      = 8 << 10  // whole REQUEST payload
	MaxErrorMessage = 4 << 10
	maxService      = 64
	maxGitProtocol  = 1 << 10
	maxPath         = 4 << 10
)

// RequestVersion is the version byte that starts a REQUEST payload.
const RequestVersion = 1

// ErrFrame is wrapped by every decoding and encoding error.
var ErrFrame = errors.New("bad frame")

func frameErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrFrame, fmt.Sprintf(format, args...))
}

// Frame is one wire message.
type Frame interface {
	// Type is the frame's type byte.
	Type() Type
	// Encode writes the whole frame, header included, in one Write.
	Encode(w io.Writer) error
}

// Wire messages.
type (
	// RequestFrame names the service to run. Path is empty unless the
	// transport names a repository; GitProtocol is the value of
	// GIT_PROTOCOL for the service, empty for protocol v0.
	RequestFrame struct {
		Service     string
		GitProtocol string
		Path        string
	}
	// ReadyFrame says the service was started.
	ReadyFrame struct{}
	// DataFrame carries at most MaxData bytes of the service's stdin or
	// stdout.
	DataFrame struct{ Data []byte }
	// EOFFrame says the sender will send no more DATA.
	EOFFrame struct{}
	// StderrFrame carries at most MaxData bytes of the service's stderr.
	StderrFrame struct{ Text []byte }
	// ExitFrame carries the service's exit status (128+n for signal n).
	ExitFrame struct{ Code int32 }
	// ErrorFrame carries a message for the user, such as "repository not
	// found".
	ErrorFrame struct{ Message string }
)

// Compile-time checks.
var (
	_ Frame = RequestFrame{}
	_ Frame = ReadyFrame{}
	_ Frame = DataFrame{}
	_ Frame = EOFFrame{}
	_ Frame = StderrFrame{}
	_ Frame = ExitFrame{}
	_ Frame = ErrorFrame{}
)

func (RequestFrame) Type() Type { return TypeRequest }
func (ReadyFrame) Type() Type   { return TypeReady }
func (DataFrame) Type() Type    { return TypeData }
func (EOFFrame) Type() Type     { return TypeEOF }
func (StderrFrame) Type() Type  { return TypeStderr }
func (ExitFrame) Type() Type    { return TypeExit }
func (ErrorFrame) Type() Type   { return TypeError }

// maxPayload is the largest payload a frame type may carry, or -1 for an
// unknown type.
func maxPayload(t Type) int {
	switch t {
	case TypeRequest:
		return MaxRequest
	case TypeData, TypeStderr:
		return MaxData
	case TypeExit:
		return 4
	case TypeError:
		return MaxErrorMessage
	case TypeReady, TypeEOF:
		return 0
	}
	return -1
}

// writeFrame writes header and payload with a single Write, so frames
// from concurrent writers sharing a lock never interleave and a
// message-oriented transport sees one message per frame.
func writeFrame(w io.Writer, t Type, payload []byte) error {
	if max := maxPayload(t); len(payload) > max {
		return frameErrorf("%c payload of %d bytes exceeds %d", t, len(payload), max)
	}
	buf := make([]byte, HeaderSize+len(payload))
	buf[0] = byte(t)
	binary.BigEndian.PutUint32(buf[1:], uint32(len(payload)))
	copy(buf[HeaderSize:], payload)
	_, err := w.Write(buf)
	return err
}

// Encode writes the frame; it refuses fields that are too long or hold a
// NUL byte.
func (f RequestFrame) Encode(w io.Writer) error {
	if err := f.check(); err != nil {
		return err
	}
	p := make([]byte, 0, 1+6+len(f.Service)+len(f.GitProtocol)+len(f.Path))
	p = append(p, RequestVersion)
	for _, s := range []string{f.Service, f.GitProtocol, f.Path} {
		p = binary.BigEndian.AppendUint16(p, uint16(len(s)))
		p = append(p, s...)
	}
	return writeFrame(w, TypeRequest, p)
}

func (f RequestFrame) check() error {
	for _, fld := range []struct {
		name, val string
		max       int
	}{
		{"service", f.Service, maxService},
		{"GIT_PROTOCOL", f.GitProtocol, maxGitProtocol},
		{"path", f.Path, maxPath},
	} {
		if len(fld.val) > fld.max {
			return frameErrorf("request %s of %d bytes exceeds %d", fld.name, len(fld.val), fld.max)
		}
		if strings.IndexByte(fld.val, 0) >= 0 {
			return frameErrorf("request %s holds a NUL byte", fld.name)
		}
	}
	return nil
}

func (f *RequestFrame) decode(p []byte) error {
	if len(p) == 0 || p[0] != RequestVersion {
		return frameErrorf("request: unsupported version")
	}
	p = p[1:]
	var fields [3]string
	for i := range fields {
		if len(p) < 2 {
			return frameErrorf("request: truncated field %d", i+1)
		}
		n := int(binary.BigEndian.Uint16(p))
		p = p[2:]
		if n > len(p) {
			return frameErrorf("request: field %d overruns the frame", i+1)
		}
		fields[i] = string(p[:n])
		p = p[n:]
	}
	if len(p) != 0 {
		return frameErrorf("request: %d trailing bytes", len(p))
	}
	*f = RequestFrame{Service: fields[0], GitProtocol: fields[1], Path: fields[2]}
	return f.check()
}

// Encode writes the frame.
func (ReadyFrame) Encode(w io.Writer) error { return writeFrame(w, TypeReady, nil) }

// Encode writes the frame.
func (f DataFrame) Encode(w io.Writer) error { return writeFrame(w, TypeData, f.Data) }

// Encode writes the frame.
func (EOFFrame) Encode(w io.Writer) error { return writeFrame(w, TypeEOF, nil) }

// Encode writes the frame.
func (f StderrFrame) Encode(w io.Writer) error { return writeFrame(w, TypeStderr, f.Text) }

// Encode writes the frame.
func (f ExitFrame) Encode(w io.Writer) error {
	return writeFrame(w, TypeExit, binary.BigEndian.AppendUint32(nil, uint32(f.Code)))
}

// Encode writes the frame.
func (f ErrorFrame) Encode(w io.Writer) error { return writeFrame(w, TypeError, []byte(f.Message)) }

// ReadFrame reads one frame. It returns io.EOF only when the stream ends
// cleanly before a frame starts, and io.ErrUnexpectedEOF when it ends
// inside one. It never allocates more than the frame type's limit, and
// allocates nothing before the header has been checked.
func ReadFrame(r io.Reader) (Frame, error) {
	var h [HeaderSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, err
	}
	t := Type(h[0])
	n := binary.BigEndian.Uint32(h[1:])
	max := maxPayload(t)
	if max < 0 {
		return nil, frameErrorf("unknown frame type 0x%02x", h[0])
	}
	if n > uint32(max) {
		return nil, frameErrorf("%c frame of %d bytes exceeds %d", t, n, max)
	}
	var p []byte
	if n > 0 {
		p = make([]byte, n)
		if _, err := io.ReadFull(r, p); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	switch t {
	case TypeRequest:
		var f RequestFrame
		if err := f.decode(p); err != nil {
			return nil, err
		}
		return f, nil
	case TypeReady:
		return ReadyFrame{}, nil
	case TypeData:
		return DataFrame{Data: p}, nil
	case TypeEOF:
		return EOFFrame{}, nil
	case TypeStderr:
		return StderrFrame{Text: p}, nil
	case TypeExit:
		if n != 4 {
			return nil, frameErrorf("exit frame of %d bytes, want 4", n)
		}
		return ExitFrame{Code: int32(binary.BigEndian.Uint32(p))}, nil
	default: // TypeError
		return ErrorFrame{Message: string(p)}, nil
	}
}
