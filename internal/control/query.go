package control

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/git-remote-daemon/git-remote-daemon/protocol"
)

// Query is the line that asks the daemon for its live status, which it
// answers with one line: "OK <status as JSON>" (or an ERROR line). So
// `git-remote-daemon status` shows what the daemon knows even when it
// cannot write its status file (a full disk).
const Query = "STATUS"

// SetStatus sets the function whose output answers Query: one JSON
// document, no newline. Until it is set, Query is answered with an ERROR.
func (s *Server) SetStatus(fn func() ([]byte, error)) { s.status.Store(&fn) }

// queryReply is the answer to Query.
type queryReply struct{ json []byte }

func (queryReply) Verb() string     { return OK }
func (q queryReply) String() string { return OK + " " + string(q.json) }

func (s *Server) answerQuery() protocol.Message {
	fn := s.status.Load()
	if fn == nil {
		return protocol.Error{Remote: protocol.Daemon, Text: "the daemon is starting: no status yet"}
	}
	data, err := (*fn)()
	if err == nil && (len(data) > protocol.MaxLineLength-len(OK)-1 || strings.ContainsAny(string(data), "\r\n")) {
		err = fmt.Errorf("status of %d bytes does not fit on a line", len(data))
	}
	if err != nil {
		return protocol.Error{Remote: protocol.Daemon, Text: protocol.OneLine(err.Error())}
	}
	return queryReply{json: data}
}

// QueryStatus asks the daemon listening at path for its live status and
// returns the JSON document it answered.
func QueryStatus(ctx context.Context, path string) ([]byte, error) {
	conn, err := dial(ctx, path)
	if err != nil {
		if errors.Is(err, errNotOwner) {
			return nil, err
		}
		return nil, fmt.Errorf("%w (%s): %w", ErrNoDaemon, path, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if _, err := io.WriteString(conn, Query+"\n"); err != nil {
		return nil, sendErr(ctx, err)
	}
	br := bufio.NewReaderSize(conn, protocol.MaxLineLength+2)
	line, err := br.ReadSlice('\n')
	if err != nil {
		return nil, sendErr(ctx, fmt.Errorf("no answer to %s: %w", Query, err))
	}
	reply := strings.TrimRight(string(line), "\r\n")
	if data, ok := strings.CutPrefix(reply, OK+" "); ok {
		return []byte(data), nil
	}
	if err := parseReply(reply); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("control socket: unexpected answer %q", protocol.OneLine(reply))
}
