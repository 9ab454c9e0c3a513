package helper

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/internal/gitexec"
	"github.com/git-remote-daemon/git-remote-daemon/internal/gitrepo"
)

// ServeOptions configures Serve.
type ServeOptions struct {
	// RepoDir is the repository served when Resolve is nil; the
	// request's path is then ignored.
	RepoDir string
	// Resolve maps a request's path to a repository directory. Its
	// error's text is sent to the peer; wrap ErrRepositoryNotFound.
	Resolve func(ctx context.Context, path string) (string, error)
	// Authorize, if set, approves a request before the service starts.
	// Its error's text is sent to the peer, wrapped in ErrNotAuthorized.
	Authorize func(ctx context.Context, a Access) error
	// Git is the git program; "" means "git" found on PATH.
	Git    string
	Logger *slog.Logger // nil discards
}

// Access is what Authorize decides on.
type Access struct {
	Service     string // UploadPack (read) or ReceivePack (write)
	GitProtocol string
	Path        string // as requested
	Dir         string // as resolved
}

// Errors Serve returns or reports to the peer.
var (
	ErrRepositoryNotFound = errors.New("repository not found")
	ErrNotAuthorized      = errors.New("not authorized")
	ErrBadRequest         = errors.New("bad request")
	// ErrStreamBroken is wrapped when the stream failed or ended without
	// an EOF frame; the service was then killed, never fed an EOF that
	// could pass for the end of its input.
	ErrStreamBroken = errors.New("stream broken")
)

// closeGrace is how long Serve waits, after EXIT, for the peer to close
// its end first, so EXIT is not lost to a reset.
const closeGrace = 5 * time.Second

// brokenGrace is how long a service whose stream broke has, once its
// input is closed, to exit by itself before it is killed. On that EOF
// git receive-pack fails the push (no ref moves) and removes its
// quarantine of the half-received pack; killed at once, it left the
// quarantine (tens of MB) in objects/ for good.
const brokenGrace = 2 * time.Second

// Serve serves one session on stream and closes it: it reads the REQUEST
// frame, checks it, runs the real `git upload-pack <dir>` or `git
// receive-pack <dir>` with GIT_PROTOCOL from the request (as git daemon
// and sshd pass it), pipes DATA both ways, sends the service's stderr as
// STDERR frames and its status as EXIT.
//
// If ctx ends, the service and its children are killed. If the stream
// breaks, the service's input is closed, and it is killed if it has not
// exited brokenGrace later: receive-pack updates refs only after the
// whole pack arrived and was checked, so a peer vanishing mid-push leaves
// the refs untouched, and on that end of input receive-pack also removes
// its quarantine of the half-received pack.
//
// Serve returns nil when the service ran to completion, whatever its
// status; an error wrapping ErrStreamBroken when the stream broke.
func Serve(ctx context.Context, stream io.ReadWriteCloser, opts ServeOptions) error {
	defer stream.Close()
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	closeOnCancel := context.AfterFunc(ctx, func() { stream.Close() })
	defer closeOnCancel()

	f, err := ReadFrame(stream)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !errors.Is(err, ErrFrame) {
			return fmt.Errorf("reading request: %w", err)
		}
		return refuse(stream, err)
	}
	req, ok := f.(RequestFrame)
	if !ok {
		return refuse(stream, fmt.Errorf("%w: %c frame before the request", ErrBadRequest, f.Type()))
	}
	log = log.With("service", req.Service, "path", req.Path)
	dir, err := opts.check(ctx, req)
	if err != nil {
		log.Info("refused", "err", err)
		return refuse(stream, err)
	}
	s := &session{stream: stream, log: log, req: req, dir: dir, git: opts.Git}
	return s.run(ctx)
}

// refuse sends err's text in an ERROR frame and returns err.
func refuse(w io.Writer, err error) error {
	msg := err.Error()
	if len(msg) > MaxErrorMessage {
		msg = msg[:MaxErrorMessage]
	}
	if werr := (ErrorFrame{Message: msg}).Encode(w); werr != nil {
		return fmt.Errorf("%w (sending the error: %v)", err, werr)
	}
	return err
}

func (o *ServeOptions) check(ctx context.Context, req RequestFrame) (string, error) {
	if !ValidService(req.Service) {
		return "", fmt.Errorf("%w: unsupported service %q", ErrBadRequest, req.Service)
	}
	if !validGitProtocol(req.GitProtocol) {
		return "", fmt.Errorf("%w: GIT_PROTOCOL holds control characters", ErrBadRequest)
	}
	var dir string
	switch {
	case o.Resolve != nil:
		d, err := o.Resolve(ctx, req.Path)
		if err != nil {
			return "", err
		}
		dir = d
	case o.RepoDir != "":
		dir = o.RepoDir
	default:
		return "", fmt.Errorf("%w: no repository is served here", ErrRepositoryNotFound)
	}
	if !gitrepo.IsRepo(dir) {
		if req.Path != "" {
			return "", fmt.Errorf("%w: %s", ErrRepositoryNotFound, req.Path)
		}
		return "", ErrRepositoryNotFound
	}
	if o.Authorize != nil {
		a := Access{Service: req.Service, GitProtocol: req.GitProtocol, Path: req.Path, Dir: dir}
		if err := o.Authorize(ctx, a); err != nil {
			if !errors.Is(err, ErrNotAuthorized) {
				err = fmt.Errorf("%w: %w", ErrNotAuthorized, err)
			}
			return "", err
		}
	}
	return dir, nil
}

// session is one running service.
type session struct {
	stream io.ReadWriteCloser
	log    *slog.Logger
	req    RequestFrame
	dir    string
	git    string

	wmu sync.Mutex // serializes frames written to stream

	pmu    sync.Mutex
	cmd    *exec.Cmd
	exited bool  // the service was waited for: its pid may be reused
	killed error // why it was killed
	broken error // why its input was closed early (the stream broke)
}

func (s *session) send(f Frame) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return f.Encode(s.stream)
}

// kill kills the service and its children, once, unless it already
// exited.
func (s *session) kill(why error) {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	if s.exited || s.killed != nil {
		return
	}
	s.killed = why
	s.log.Info("killing the service", "why", why)
	if err := gitexec.Kill(s.cmd); err != nil {
		s.log.Warn("kill", "err", err)
	}
}

// endBroken ends the service whose stream broke: its input is closed
// (by pumpIn, on return, as the read side of a broken stream fails
// too), and it is killed if it has not exited brokenGrace later.
func (s *session) endBroken(why error) {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	if s.exited || s.killed != nil || s.broken != nil {
		return
	}
	s.broken = why
	s.log.Info("input broken: closing the service's input", "why", why)
	time.AfterFunc(brokenGrace, func() { s.kill(why) })
}

func (s *session) run(ctx context.Context) error {
	git := s.git
	if git == "" {
		git = "git"
	}
	// "git upload-pack <dir>", as sshd runs "git-upload-pack '<dir>'". It
	// is ended by s.kill (on ctx's end too, below), not by a context:
	// its whole process group at once, so index-pack or unpack-objects
	// under receive-pack end with it.
	s.cmd = gitexec.Program(context.Background(), git, strings.TrimPrefix(s.req.Service, "git-"), s.dir)
	s.cmd.Env = serviceEnv(s.cmd.Env, s.req.GitProtocol)
	stdin, err := s.cmd.StdinPipe()
	if err != nil {
		return refuse(s.stream, err)
	}
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		return refuse(s.stream, err)
	}
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		return refuse(s.stream, err)
	}
	if err := s.cmd.Start(); err != nil {
		return refuse(s.stream, fmt.Errorf("cannot run %s: %w", s.req.Service, err))
	}
	s.log.Debug("started", "dir", s.dir, "git_protocol", s.req.GitProtocol)
	stopKill := context.AfterFunc(ctx, func() { s.kill(ctx.Err()) })
	defer stopKill()
	if err := s.send(ReadyFrame{}); err != nil {
		s.kill(fmt.Errorf("%w: %w", ErrStreamBroken, err))
	}

	inDone := make(chan struct{})
	go func() {
		defer close(inDone)
		s.pumpIn(stdin)
	}()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		s.pumpOut(stdout, func(b []byte) Frame { return DataFrame{Data: b} })
	}()
	go func() {
		defer wg.Done()
		s.pumpOut(stderr, func(b []byte) Frame {
			s.log.Debug("stderr", "text", string(b))
			return StderrFrame{Text: b}
		})
	}()
	wg.Wait()
	werr := s.cmd.Wait()
	s.pmu.Lock()
	s.exited = true
	killed, broken := s.killed, s.broken
	s.pmu.Unlock()
	code := gitexec.ExitCode(s.cmd.ProcessState)
	s.log.Debug("exited", "code", code, "wait", werr)
	if killed != nil {
		if ctx.Err() != nil { // the stream was closed because of it
			killed = ctx.Err()
		}
		return fmt.Errorf("%s killed: %w", s.req.Service, killed)
	}
	if broken != nil {
		return fmt.Errorf("%s ended early: %w", s.req.Service, broken)
	}
	if err := s.send(ExitFrame{Code: int32(code)}); err != nil {
		return fmt.Errorf("%w: sending exit status: %w", ErrStreamBroken, err)
	}
	// Let the peer, which closes on EXIT, close first.
	t := time.NewTimer(closeGrace)
	defer t.Stop()
	select {
	case <-inDone:
	case <-t.C:
	case <-ctx.Done():
	}
	return nil
}

// pumpIn is the only reader of the stream once the service runs: DATA
// goes to the service's stdin, EOF closes it. The stream ending or failing
// before EOF kills the service. DATA the service no longer reads is
// dropped.
func (s *session) pumpIn(stdin io.WriteCloser) {
	defer stdin.Close()
	gotEOF, reading := false, true
	for {
		f, err := ReadFrame(s.stream)
		if err != nil {
			if !gotEOF {
				s.endBroken(fmt.Errorf("%w: %w", ErrStreamBroken, err))
			}
			return
		}
		switch f := f.(type) {
		case DataFrame:
			if gotEOF {
				s.kill(fmt.Errorf("%w: DATA after EOF", ErrFrame))
				return
			}
			if reading {
				if _, err := stdin.Write(f.Data); err != nil {
					s.log.Debug("service stopped reading its input", "err", err)
					reading = false
				}
			}
		case EOFFrame:
			if !gotEOF {
				gotEOF = true
				stdin.Close()
			}
		default:
			s.kill(fmt.Errorf("%w: unexpected %c frame from the client", ErrFrame, f.Type()))
			return
		}
	}
}

// pumpOut sends what the service writes to r as frames, until r ends.
// After a failed send it drains r so the service is never blocked on it.
func (s *session) pumpOut(r io.Reader, frame func([]byte) Frame) {
	buf := make([]byte, MaxData)
	broken := false
	for {
		n, err := r.Read(buf)
		if n > 0 && !broken {
			if werr := s.send(frame(buf[:n])); werr != nil {
				broken = true
				s.endBroken(fmt.Errorf("%w: %w", ErrStreamBroken, werr))
			}
		}
		if err != nil {
			return
		}
	}
}
