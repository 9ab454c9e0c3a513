package helper

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"
)

// Request describes the session Run asks Dial for.
type Request struct {
	Service     string // UploadPack or ReceivePack
	GitProtocol string // GIT_PROTOCOL for the far side's service; "" means v0
	Path        string // Config.Path: the repository named in the REQUEST frame
	Remote      string // the remote's name, as git gave it
	URL         string // the URL, as git gave it (without "<scheme>::")
	Verbosity   int    // from "option verbosity"; 1 unless git said otherwise
	Progress    bool   // from "option progress"
}

// Conn is what Dial returns: a reliable, ordered, full-duplex byte stream
// to a peer running Serve. Run speaks frames over it and closes it when
// the session ends. Close must unblock a pending Read.
type Conn interface {
	io.Reader
	io.Writer
	io.Closer
}

// Config configures Run. main fills it from os.Args and the environment.
type Config struct {
	Stdin  io.Reader // from git
	Stdout io.Writer // to git; belongs to the protocol
	Stderr io.Writer // the user's; nil discards
	Remote string    // first argument
	URL    string    // second argument
	// Path is the repository to name in the REQUEST frame, if the
	// transport's URL names one; "" lets the server pick.
	Path string
	// Dial opens the stream to the peer. It is called once, on "connect".
	Dial func(ctx context.Context, req Request) (Conn, error)
	// GitProtocol returns the GIT_PROTOCOL value for the far side's
	// service; nil means DefaultGitProtocol.
	GitProtocol func(ctx context.Context, service string) (string, error)
	Logger      *slog.Logger // nil discards
}

// ExitError reports that the far side's service exited with a non-zero
// status; main should exit with Code.
type ExitError struct {
	Service string
	Code    int
}

func (e *ExitError) Error() string {
	return fmt.Sprintf("remote %s exited with status %d", e.Service, e.Code)
}

// RemoteError is an ERROR frame from the far side, such as "repository
// not found".
type RemoteError struct{ Message string }

func (e *RemoteError) Error() string { return "remote error: " + e.Message }

// Capabilities is Run's whole answer to "capabilities".
const Capabilities = "connect\noption\n\n"

// writeGrace is how long Run waits for the far side's EXIT after a write
// to the connection failed: the server closes its end right after EXIT,
// so a late write from git's side may fail while EXIT is still arriving.
const writeGrace = 2 * time.Second

type runner struct {
	cfg       Config
	log       *slog.Logger
	stderr    io.Writer
	verbosity int
	progress  bool
}

// Run serves git on cfg.Stdin/cfg.Stdout until git ends the session or the
// connection's service exits. It returns nil when git closed stdin or sent
// a blank line before "connect", an *ExitError when the far side's service
// failed, and other errors after printing a "fatal: " line to cfg.Stderr.
// When it returns early (ctx ended, git gone) a goroutine may stay blocked
// on cfg.Stdin or cfg.Stdout until they unblock; main exits anyway.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Stdin == nil || cfg.Stdout == nil || cfg.Dial == nil {
		return errors.New("helper: Config needs Stdin, Stdout and Dial")
	}
	r := &runner{cfg: cfg, log: cfg.Logger, stderr: cfg.Stderr, verbosity: 1}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.stderr == nil {
		r.stderr = io.Discard
	}
	r.stderr = &lockedWriter{w: r.stderr} // readConn and fail both write
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	in := startStdin(cfg.Stdin)
	defer in.stop()

	for {
		line, err := in.readLine(ctx)
		if errors.Is(err, io.EOF) {
			r.log.Debug("stdin closed before connect")
			return nil
		}
		if err != nil {
			return r.fail(err)
		}
		cmd, err := ParseCommand(line)
		if err != nil {
			return r.fail(err)
		}
		r.log.Debug("command", "line", line)
		switch cmd.Verb {
		case "":
			return nil
		case VerbCapabilities:
			// "Lists the capabilities of the helper, one per line,
			// ending with a blank line." (gitremote-helpers(7))
			err = r.reply(Capabilities)
		case VerbOption:
			err = r.reply(r.option(cmd.Name, cmd.Value) + "\n")
		case VerbConnect:
			return r.connect(ctx, cmd.Name, in)
		}
		if err != nil {
			return err
		}
	}
}

func (r *runner) reply(s string) error {
	if _, err := io.WriteString(r.cfg.Stdout, s); err != nil {
		return fmt.Errorf("writing to git: %w", err)
	}
	return nil
}

// fail prints err for the user the way git prints fatal errors, and
// returns it.
func (r *runner) fail(err error) error {
	fmt.Fprintf(r.stderr, "fatal: %s\n", sanitize([]byte(err.Error())))
	return err
}

// option implements "option <name> <value>" (gitremote-helpers(7)):
//
//	Sets the transport helper option <name> to <value>. Outputs a single
//	line containing one of ok (option successfully set), unsupported
//	(option not recognized) or error <msg> (option <name> is supported
//	but <value> is not valid for it).
//
//	option verbosity <n>
//	    Changes the verbosity of messages displayed by the helper. [...]
//	option progress {true|false}
//	    Enables (or disables) progress messages displayed by the transport
//	    helper during a command.
//
// Every other option (depth, followtags, push-option, ...) is carried by
// git's own protocol once connected, so the helper needs none of them.
func (r *runner) option(name, value string) string {
	switch name {
	case "verbosity":
		n, err := strconv.Atoi(value)
		if err != nil {
			return "error verbosity must be a number"
		}
		r.verbosity = n
		return "ok"
	case "progress":
		switch value {
		case "true":
			r.progress = true
		case "false":
			r.progress = false
		default:
			return "error progress must be true or false"
		}
		return "ok"
	}
	return "unsupported"
}

type connResult struct {
	code int
	err  error
}

// connect implements "connect <service>" (gitremote-helpers(7)):
//
//	Connects to given service. Standard input and standard output of
//	helper are connected to specified service [...] on remote side. Valid
//	replies to this command are empty line (connection established),
//	fallback (no smart transport support, fall back to dumb transports)
//	and just exiting with error message printed (can't connect, don't
//	bother trying to fall back). After line feed terminating the positive
//	(empty) response, the output of service starts. After the connection
//	ends, the remote helper exits.
//
// The empty line is sent only once the far side has started the service
// (READY), so a refusal is reported by exiting with a message, and git
// prints nothing of its own.
func (r *runner) connect(ctx context.Context, service string, in *stdinReader) error {
	if !ValidService(service) {
		return r.fail(fmt.Errorf("unsupported service %q", service))
	}
	gitProtocol := r.cfg.GitProtocol
	if gitProtocol == nil {
		gitProtocol = DefaultGitProtocol
	}
	proto, err := gitProtocol(ctx, service)
	if err != nil {
		return r.fail(err)
	}
	req := Request{
		Service: service, GitProtocol: proto, Path: r.cfg.Path,
		Remote: r.cfg.Remote, URL: r.cfg.URL,
		Verbosity: r.verbosity, Progress: r.progress,
	}
	r.log.Debug("dialing", "service", service, "url", r.cfg.URL, "git_protocol", proto)
	conn, err := r.cfg.Dial(ctx, req)
	if err != nil {
		return r.fail(fmt.Errorf("unable to connect to %s: %w", r.cfg.URL, err))
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	if err := (RequestFrame{Service: service, GitProtocol: proto, Path: r.cfg.Path}).Encode(conn); err != nil {
		return r.fail(fmt.Errorf("%s: sending request: %w", r.cfg.URL, err))
	}
	// git writes nothing before the empty line, but stdin is read from
	// now on so that git giving up (EOF) ends the helper at once.
	in.startCopy(conn)
	ready := make(chan struct{})
	done := make(chan connResult, 1)
	go r.readConn(conn, service, ready, done)

	var connected, stdinClosed bool
	stdinDone := in.results
	for {
		select {
		case <-ready:
			connected, ready = true, nil
			r.log.Debug("connected", "service", service)
		case res := <-stdinDone:
			stdinDone = nil
			if res.err != nil {
				// Writing to the peer failed: report the peer's
				// own verdict if it arrives soon.
				select {
				case cr := <-done:
					return r.finish(service, cr)
				case <-time.After(writeGrace):
				case <-ctx.Done():
				}
				return r.fail(fmt.Errorf("%s: %w", r.cfg.URL, res.err))
			}
			if !connected {
				select {
				case <-ready: // READY and EOF raced; READY came first
					connected, ready = true, nil
				default:
				}
			}
			if !connected {
				r.log.Debug("stdin closed before the connection was established")
				return nil
			}
			// git stopped writing (after the pack, for a push) but
			// still reads: the EOF frame is sent; wait for EXIT.
			stdinClosed = true
			r.log.Debug("stdin closed", "service", service)
		case cr := <-done:
			r.log.Debug("connection ended", "service", service, "code", cr.code, "err", cr.err, "stdin_closed", stdinClosed)
			return r.finish(service, cr)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (r *runner) finish(service string, cr connResult) error {
	var remote *RemoteError
	var stdout *stdoutError
	switch {
	case errors.As(cr.err, &stdout):
		return cr.err // git went away; nobody to tell
	case errors.As(cr.err, &remote):
		return r.fail(cr.err)
	case cr.err != nil:
		return r.fail(fmt.Errorf("%s: %w", r.cfg.URL, cr.err))
	case cr.code != 0:
		return &ExitError{Service: service, Code: cr.code}
	}
	return nil
}

// stdoutError marks a failed write to git.
type stdoutError struct{ err error }

func (e *stdoutError) Error() string { return "writing to git: " + e.err.Error() }
func (e *stdoutError) Unwrap() error { return e.err }

// ErrConnectionLost is wrapped when the stream ends before the far side's
// service exited.
var ErrConnectionLost = errors.New("connection lost")

// readConn is the only reader of conn and, once connected, the only
// writer to git's stdout: READY becomes the empty line, DATA goes to
// stdout, STDERR to stderr; EXIT or ERROR end it.
func (r *runner) readConn(conn io.Reader, service string, ready chan<- struct{}, done chan<- connResult) {
	connected := false
	for {
		f, err := ReadFrame(conn)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				err = fmt.Errorf("%w: the peer closed the connection before %s exited", ErrConnectionLost, service)
			} else if !errors.Is(err, ErrFrame) {
				err = fmt.Errorf("%w: %w", ErrConnectionLost, err)
			}
			done <- connResult{err: err}
			return
		}
		switch f := f.(type) {
		case ReadyFrame:
			if connected {
				done <- connResult{err: fmt.Errorf("%w: second READY", ErrFrame)}
				return
			}
			if _, err := io.WriteString(r.cfg.Stdout, "\n"); err != nil {
				done <- connResult{err: &stdoutError{err}}
				return
			}
			connected = true
			close(ready)
		case DataFrame:
			if !connected {
				done <- connResult{err: fmt.Errorf("%w: DATA before READY", ErrFrame)}
				return
			}
			if _, err := r.cfg.Stdout.Write(f.Data); err != nil {
				done <- connResult{err: &stdoutError{err}}
				return
			}
		case StderrFrame:
			if _, err := r.stderr.Write(sanitize(f.Text)); err != nil {
				r.log.Debug("writing to stderr", "err", err)
			}
		case ExitFrame:
			done <- connResult{code: int(f.Code)}
			return
		case ErrorFrame:
			done <- connResult{err: &RemoteError{Message: string(sanitize([]byte(f.Message)))}}
			return
		default:
			done <- connResult{err: fmt.Errorf("%w: unexpected %c frame from the server", ErrFrame, f.Type())}
			return
		}
	}
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// sanitize replaces control characters other than newline, carriage
// return and tab, so a peer cannot drive the user's terminal.
func sanitize(b []byte) []byte {
	out, copied := b, false
	for i, c := range b {
		if (c < 0x20 && c != '\n' && c != '\r' && c != '\t') || c == 0x7f {
			if !copied {
				out, copied = append([]byte(nil), b...), true
			}
			out[i] = '?'
		}
	}
	return out
}
