package control

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/protocol"
)

// Pairing on the control socket: the client sends PAIR or PAIRJOIN (the
// stdio protocol's lines) and the daemon answers with several lines: for
// PAIR first PAIRCODE <code>, then PAIRED <remote> <url>; for PAIRJOIN
// PAIRED <remote> <url>; or, at any point, one ERROR line, which ends
// the answer. The client closing the connection cancels an invitation
// still open.

// PairHandler carries out a PAIR or PAIRJOIN: it sends PAIRCODE (for
// PAIR) and PAIRED with reply; an error is sent as the final ERROR line.
// ctx ends when the client goes away.
type PairHandler func(ctx context.Context, m protocol.Message, reply func(protocol.Message) error) error

// SetPair sets the handler of PAIR and PAIRJOIN lines. Until it is set,
// they are answered with an ERROR.
func (s *Server) SetPair(h PairHandler) { s.pair.Store(&h) }

// isPair reports whether line is a pairing request.
func isPair(line string) bool {
	verb, _, _ := strings.Cut(line, " ")
	return verb == "PAIR" || verb == "PAIRJOIN"
}

// servePair answers one pairing request on conn, reading nothing more
// from it but its end.
func (s *Server) servePair(ctx context.Context, conn net.Conn, line string, n int, w *protocol.Writer) {
	reply := func(m protocol.Message) error {
		_ = conn.SetWriteDeadline(time.Now().Add(idleTimeout))
		return w.Send(m)
	}
	m, err := protocol.ParseCommand(line)
	h := s.pair.Load()
	switch {
	case err != nil:
		err = fmt.Errorf("line %d: %w", n, err)
	case h == nil:
		err = errors.New("this daemon cannot pair")
	default:
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		_ = conn.SetReadDeadline(time.Time{})
		go func() { // the client hanging up cancels
			_, _ = io.Copy(io.Discard, conn)
			cancel()
		}()
		err = (*h)(ctx, m, reply)
	}
	if err != nil {
		_ = reply(protocol.Error{Remote: protocol.Daemon, Text: protocol.OneLine("pair: " + err.Error())})
	}
	s.log.Debug("control", "line", protocol.OneLine(verbOf(line)), "err", err)
}

func verbOf(line string) string { v, _, _ := strings.Cut(line, " "); return v }

// Pair sends a PAIR or PAIRJOIN to the daemon listening at path, calls
// onCode with the PAIRCODE of a PAIR, and returns the PAIRED line that
// ends a pairing, or the daemon's ERROR as a *RefusedError. Cancelling
// ctx hangs up, which cancels the daemon's invitation.
func Pair(ctx context.Context, path string, m protocol.Message, onCode func(protocol.PairCode)) (protocol.Paired, error) {
	conn, err := dial(ctx, path)
	if err != nil {
		if errors.Is(err, errNotOwner) {
			return protocol.Paired{}, err
		}
		return protocol.Paired{}, fmt.Errorf("%w (%s): %w", ErrNoDaemon, path, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if _, err := io.WriteString(conn, m.String()+"\n"); err != nil {
		return protocol.Paired{}, sendErr(ctx, err)
	}
	r := protocol.NewReaderLimit(bufio.NewReader(conn), maxReply)
	for {
		line, err := r.ReadLine()
		if err != nil {
			return protocol.Paired{}, sendErr(ctx, fmt.Errorf("no answer to %s: %w", m.Verb(), err))
		}
		got, err := parsePairReply(line)
		if err != nil {
			return protocol.Paired{}, err
		}
		switch got := got.(type) {
		case protocol.PairCode:
			if onCode != nil {
				onCode(got)
			}
		case protocol.Paired:
			return got, nil
		}
	}
}

// parsePairReply reads one line of the answer to a pairing request.
func parsePairReply(line string) (protocol.Message, error) {
	m, err := protocol.Parse(line)
	if err != nil {
		return nil, fmt.Errorf("control socket: unexpected answer: %w", err)
	}
	switch m := m.(type) {
	case protocol.PairCode, protocol.Paired:
		return m, nil
	case protocol.Error:
		return nil, &RefusedError{Remote: m.Remote, Text: m.Text}
	}
	return nil, fmt.Errorf("control socket: unexpected answer %q", protocol.OneLine(line))
}
