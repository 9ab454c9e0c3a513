package protocol

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"sync"
)

// ErrLineTooLong is returned by Reader.ReadLine for a line over its
// limit; the rest of that line is skipped and reading can go on.
var ErrLineTooLong = errors.New("line too long")

// Reader reads protocol lines, never buffering more than its limit
// (MaxLineLength unless made with NewReaderLimit).
type Reader struct {
	r    *bufio.Reader
	max  int
	line int
}

// NewReader returns a Reader on r for lines of up to MaxLineLength bytes.
func NewReader(r io.Reader) *Reader {
	return NewReaderLimit(r, MaxLineLength)
}

// NewReaderLimit returns a Reader on r for lines of up to max bytes: a
// longer line is skipped as it arrives, never held whole.
func NewReaderLimit(r io.Reader, max int) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, 4096), max: max}
}

// ReadLine returns the next line without its line ending ("\n" or "\r\n").
// A final line without a newline is returned too. At the end of input it
// returns io.EOF. A line over the limit yields an error wrapping
// ErrLineTooLong; the caller may keep reading.
func (r *Reader) ReadLine() (string, error) {
	var buf []byte
	tooLong := false
	for {
		chunk, err := r.r.ReadSlice('\n')
		if !tooLong {
			if len(buf)+len(chunk) > r.max+2 {
				tooLong = true
				buf = nil
			} else {
				buf = append(buf, chunk...)
			}
		}
		switch {
		case err == nil:
			r.line++
			if tooLong {
				return "", fmt.Errorf("line %d: %w", r.line, ErrLineTooLong)
			}
			buf = buf[:len(buf)-1]
			if n := len(buf); n > 0 && buf[n-1] == '\r' {
				buf = buf[:n-1]
			}
			if len(buf) > r.max {
				return "", fmt.Errorf("line %d: %w", r.line, ErrLineTooLong)
			}
			return string(buf), nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if tooLong {
				r.line++
				return "", fmt.Errorf("line %d: %w", r.line, ErrLineTooLong)
			}
			if len(buf) > 0 {
				r.line++
				return string(buf), nil
			}
			return "", io.EOF
		default:
			return "", err
		}
	}
}

// Line is the number of the line last returned, counting from 1.
func (r *Reader) Line() int { return r.line }

// Writer writes messages, one whole line per Write call, safe for
// concurrent use: lines from several goroutines never interleave.
type Writer struct {
	mu sync.Mutex
	w  io.Writer
}

// NewWriter returns a Writer on w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Send writes m as one line.
func (w *Writer) Send(m Message) error {
	line := m.String() + "\n"
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, err := io.WriteString(w.w, line); err != nil {
		return fmt.Errorf("write %s: %w", m.Verb(), err)
	}
	return nil
}
