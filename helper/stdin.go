package helper

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
)

// stdinReader is the one goroutine that reads git's stdin, first line by
// line (commands), then, after "connect", as raw bytes sent on as DATA
// frames. Reading stays in one goroutine, driven by requests from Run, so
// no byte git sent is lost between the two modes and Run can give up
// waiting (its context ended) while a Read is blocked.
type stdinReader struct {
	br      *bufio.Reader
	reqs    chan io.Writer // nil: read one command line; a conn: copy into it until EOF
	results chan stdinResult
}

type stdinResult struct {
	line string
	err  error // io.EOF: stdin ended; for a copy, nil means EOF was forwarded
}

func startStdin(r io.Reader) *stdinReader {
	s := &stdinReader{
		br:      bufio.NewReaderSize(r, MaxCommandLine+1),
		reqs:    make(chan io.Writer, 1),
		results: make(chan stdinResult, 1),
	}
	go s.loop()
	return s
}

// stop lets the goroutine end once its current Read returns.
func (s *stdinReader) stop() { close(s.reqs) }

func (s *stdinReader) loop() {
	for dst := range s.reqs {
		if dst == nil {
			line, err := s.line()
			s.results <- stdinResult{line: line, err: err}
			if err != nil {
				return
			}
			continue
		}
		s.results <- stdinResult{err: s.copyTo(dst)}
		return
	}
}

// readLine returns the next command line, without its newline.
func (s *stdinReader) readLine(ctx context.Context) (string, error) {
	s.reqs <- nil
	select {
	case res := <-s.results:
		return res.line, res.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// startCopy starts sending stdin to w as frames; the outcome arrives on
// s.results.
func (s *stdinReader) startCopy(w io.Writer) { s.reqs <- w }

func (s *stdinReader) line() (string, error) {
	b, err := s.br.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return "", fmt.Errorf("%w: line exceeds %d bytes", ErrMalformedCommand, MaxCommandLine)
	case errors.Is(err, io.EOF):
		return "", io.EOF // a partial last line means git died mid-write
	case err != nil:
		return "", fmt.Errorf("reading from git: %w", err)
	}
	return string(b[:len(b)-1]), nil
}

// connWriteError marks a failed write to the connection.
type connWriteError struct{ err error }

func (e *connWriteError) Error() string { return "sending to the peer: " + e.err.Error() }
func (e *connWriteError) Unwrap() error { return e.err }

// copyTo sends stdin to w as DATA frames and, at EOF, an EOF frame: git
// closes its end of the helper's stdin when it has nothing more to send
// (right after the pack, for a push) yet keeps reading the reply, so EOF
// is a half close, passed on to the service's stdin.
func (s *stdinReader) copyTo(w io.Writer) error {
	buf := make([]byte, MaxData)
	for {
		n, err := s.br.Read(buf)
		if n > 0 {
			if werr := (DataFrame{Data: buf[:n]}).Encode(w); werr != nil {
				return &connWriteError{werr}
			}
		}
		if errors.Is(err, io.EOF) {
			if werr := (EOFFrame{}).Encode(w); werr != nil {
				return &connWriteError{werr}
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading from git: %w", err)
		}
	}
}
