// Package control is the channel by which `git-remote-daemon pause`,
// `resume`, `reload` and `push` reach the daemon running in a
// repository: a unix socket in the repository's private remote-daemon/
// directory.
//
// The client writes the stdio protocol's own commands, one per line
// (PAUSE, RESUME, RELOAD, PUSH <remote>), and the daemon answers each with
// one line: OK when it took the command, or an ERROR line of the stdio
// protocol (ERROR <remote> <text>, the remote `*` when the line concerns
// none) when it did not. The client may send several commands on one
// connection and closes it when done.
//
// Only the daemon's user reaches the socket: it is created mode 0600 in a
// directory of mode 0700, the client refuses a socket owned by someone
// else, and where the system tells (Linux) the daemon refuses a peer of
// another user.
package control

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/protocol"
)

// OK is the answer to a command the daemon took.
const OK = "OK"

// ErrNoDaemon is wrapped by Send when nothing listens on the socket.
var ErrNoDaemon = errors.New("no daemon listens on the control socket")

// Handler carries out one command; an error is sent back as an ERROR line.
type Handler func(ctx context.Context, m protocol.Message) error

// Limits on what one client can make the daemon hold.
const (
	maxConns    = 8
	idleTimeout = 30 * time.Second
	maxReply    = 4 << 10
)

// Server is a listening control socket.
type Server struct {
	ln   net.Listener
	path string
	log  *slog.Logger
	wg   sync.WaitGroup
	// status answers the Query line (see SetStatus).
	status atomic.Pointer[func() ([]byte, error)]
	// pair answers PAIR and PAIRJOIN (see SetPair).
	pair atomic.Pointer[PairHandler]
}

// Listen creates the control socket at path, replacing a socket left by a
// daemon that died (the caller holds the repository's one-daemon lock, so
// no live daemon owns it).
func Listen(path string, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			return nil, fmt.Errorf("%s exists and is not a socket", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, err
		}
	}
	var ln net.Listener
	err := withSockAddr(path, func(addr string) error {
		var err error
		ln, err = net.Listen("unix", addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false) // removed by path in Close
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		_ = os.Remove(path)
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return &Server{ln: ln, path: path, log: log}, nil
}

// Close stops accepting, removes the socket, and waits for the
// connections being served (Serve's context ends them).
func (s *Server) Close() error {
	err := s.ln.Close()
	_ = os.Remove(s.path)
	s.wg.Wait()
	return err
}

// Serve answers connections until ctx ends or the server is closed.
func (s *Server) Serve(ctx context.Context, h Handler) error {
	stop := context.AfterFunc(ctx, func() { s.ln.Close() })
	defer stop()
	slots := make(chan struct{}, maxConns)
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("control socket: %w", err)
		}
		if err := checkPeer(conn); err != nil {
			s.log.Warn("control socket: refused", "err", err)
			conn.Close()
			continue
		}
		select {
		case slots <- struct{}{}:
		default:
			_, _ = io.WriteString(conn, protocol.Error{Remote: protocol.Daemon, Text: "too many control connections"}.String()+"\n")
			conn.Close()
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { <-slots }()
			s.serveConn(ctx, conn, h)
		}()
	}
}

func (s *Server) serveConn(ctx context.Context, conn net.Conn, h Handler) {
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	r := protocol.NewReader(conn)
	w := protocol.NewWriter(conn)
	for {
		_ = conn.SetReadDeadline(time.Now().Add(idleTimeout))
		line, err := r.ReadLine()
		var reply protocol.Message
		switch {
		case errors.Is(err, protocol.ErrLineTooLong):
			reply = protocol.Error{Remote: protocol.Daemon, Text: err.Error()}
		case err != nil:
			return // EOF, idle or broken: the client is done
		case line == Query:
			reply = s.answerQuery()
		case isPair(line):
			s.servePair(ctx, conn, line, r.Line(), w)
			return // its answer ends the connection
		default:
			reply = answer(ctx, line, r.Line(), h)
		}
		s.log.Debug("control", "line", protocol.OneLine(line), "reply", reply.String())
		_ = conn.SetWriteDeadline(time.Now().Add(idleTimeout))
		if err := w.Send(reply); err != nil {
			return
		}
	}
}

// okMsg is the OK answer, sent through the protocol writer.
type okMsg struct{}

func (okMsg) Verb() string   { return OK }
func (okMsg) String() string { return OK }

// answer carries out one command line and says how it went.
func answer(ctx context.Context, line string, n int, h Handler) protocol.Message {
	m, err := protocol.ParseCommand(line)
	if err != nil {
		return protocol.Error{Remote: protocol.Daemon, Text: fmt.Sprintf("line %d: %v", n, err)}
	}
	if err := h(ctx, m); err != nil {
		remote := protocol.Daemon
		if p, ok := m.(protocol.Push); ok {
			remote = p.Remote
		}
		return protocol.Error{Remote: remote, Text: protocol.OneLine(err.Error())}
	}
	return okMsg{}
}

// Send gives the daemon listening at path each command in turn and
// returns at the first refused one, with the daemon's ERROR text. It
// refuses a socket that is not the user's own.
func Send(ctx context.Context, path string, cmds ...protocol.Message) error {
	conn, err := dial(ctx, path)
	if err != nil {
		if errors.Is(err, errNotOwner) {
			return err
		}
		if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) {
			return fmt.Errorf("%w (%s)", ErrNoDaemon, path)
		}
		return fmt.Errorf("control socket: %w", err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	br := bufio.NewReaderSize(conn, maxReply)
	for _, m := range cmds {
		if _, err := io.WriteString(conn, m.String()+"\n"); err != nil {
			return sendErr(ctx, err)
		}
		reply, err := br.ReadSlice('\n')
		if err != nil {
			return sendErr(ctx, fmt.Errorf("no answer to %s: %w", m.Verb(), err))
		}
		if err := parseReply(strings.TrimRight(string(reply), "\r\n")); err != nil {
			return err
		}
	}
	return nil
}

func sendErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("control socket: %w", err)
}

// RefusedError is a command the daemon did not take.
type RefusedError struct {
	// Remote is the remote the answer names (`*` for none).
	Remote string
	Text   string
}

func (e *RefusedError) Error() string {
	if e.Remote == protocol.Daemon {
		return e.Text
	}
	return e.Remote + ": " + e.Text
}

// parseReply reads one answer: nil for OK, a *RefusedError for ERROR.
func parseReply(line string) error {
	if line == OK {
		return nil
	}
	m, err := protocol.Parse(line)
	if err != nil {
		return fmt.Errorf("control socket: unexpected answer: %w", err)
	}
	e, ok := m.(protocol.Error)
	if !ok {
		return fmt.Errorf("control socket: unexpected answer %q", protocol.OneLine(line))
	}
	return &RefusedError{Remote: e.Remote, Text: e.Text}
}

// checkOwner refuses a control socket that is not a socket of ours.
func checkOwner(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w (%s does not exist)", ErrNoDaemon, path)
	}
	if err != nil {
		return err
	}
	if fi.Mode().Type() != os.ModeSocket {
		return fmt.Errorf("%s is not a socket", path)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Getuid() {
		return fmt.Errorf("%s belongs to uid %d, not to you (uid %d): refused", path, st.Uid, os.Getuid())
	}
	return nil
}

// errNotOwner marks dial's refusal of a socket that is not the user's.
var errNotOwner = errors.New("not the user's socket")

// dial connects to the control socket at path, once it is known to be
// the user's own.
func dial(ctx context.Context, path string) (net.Conn, error) {
	if err := checkOwner(path); err != nil {
		return nil, fmt.Errorf("%w: %w", errNotOwner, err)
	}
	var conn net.Conn
	err := withSockAddr(path, func(addr string) error {
		var d net.Dialer
		var err error
		conn, err = d.DialContext(ctx, "unix", addr)
		return err
	})
	return conn, err
}
