package ssh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"

	"github.com/git-remote-daemon/git-remote-daemon/helper"
	"github.com/git-remote-daemon/git-remote-daemon/internal/gitexec"
)

// ShimArgs are the shim's own arguments, before git's ssh arguments.
type ShimArgs struct {
	Socket   string   // the connection's git socket
	Fallback string   // the ordinary ssh command line (for sh -c)
	SSH      []string // what git passed to its ssh: [options...] host command
}

// ParseShimArgs reads `--socket PATH --fallback LINE -- SSH-ARGS...`.
func ParseShimArgs(args []string) (ShimArgs, error) {
	var a ShimArgs
	for len(args) > 0 {
		switch args[0] {
		case "--socket", "--fallback":
			if len(args) < 2 {
				return a, fmt.Errorf("%s needs a value", args[0])
			}
			if args[0] == "--socket" {
				a.Socket = args[1]
			} else {
				a.Fallback = args[1]
			}
			args = args[2:]
		case "--":
			a.SSH = args[1:]
			args = nil
		default:
			return a, fmt.Errorf("unknown argument %q", args[0])
		}
	}
	if a.Socket == "" || a.Fallback == "" || len(a.SSH) < 2 {
		return a, errors.New("usage: ssh-mux --socket PATH --fallback SSH-COMMAND -- [SSH-OPTIONS...] HOST COMMAND")
	}
	return a, nil
}

// ParseRemoteCommand splits the command git asks ssh to run,
// "git-upload-pack '/path'" (connect.c quotes the path with sq_quote),
// into service and path.
func ParseRemoteCommand(cmd string) (service, path string, err error) {
	service, quoted, ok := strings.Cut(cmd, " ")
	if !ok || !helper.ValidService(service) {
		return "", "", fmt.Errorf("not a git service: %q", cmd)
	}
	path, err = sqUnquote(quoted)
	if err != nil {
		return "", "", fmt.Errorf("%q: %w", cmd, err)
	}
	return service, path, nil
}

// sqUnquote undoes git's sq_quote: 'text' runs, with ' and ! written
// as \' and \! between them.
func sqUnquote(s string) (string, error) {
	var b strings.Builder
	if s == "" {
		return "", errors.New("empty path")
	}
	for len(s) > 0 {
		switch s[0] {
		case '\'':
			end := strings.IndexByte(s[1:], '\'')
			if end < 0 {
				return "", errors.New("unterminated quote")
			}
			b.WriteString(s[1 : 1+end])
			s = s[2+end:]
		case '\\':
			if len(s) < 2 || (s[1] != '\'' && s[1] != '!') {
				return "", errors.New("bad escape")
			}
			b.WriteByte(s[1])
			s = s[2:]
		default:
			return "", errors.New("unquoted text")
		}
	}
	if b.Len() == 0 {
		return "", errors.New("empty path")
	}
	return b.String(), nil
}

// errFallback means nothing was exchanged yet: the ordinary path can
// still take over.
var errFallback = errors.New("fall back to ssh")

// Shim is `git-remote-daemon ssh-mux`: git runs it as its ssh. It asks
// the daemon, through the connection's git socket, for a stream to the
// service on the far side, then carries git's bytes both ways as ssh
// would, and exits with the service's status. When the socket cannot be
// used (the connection ended, the far side refused the stream) before
// anything was exchanged, it runs the ordinary ssh command instead. It
// returns the exit status.
func Shim(ctx context.Context, a ShimArgs, stdin io.Reader, stdout, stderr io.Writer) int {
	service, path, err := ParseRemoteCommand(a.SSH[len(a.SSH)-1])
	if err == nil {
		err = shimSession(ctx, a.Socket, service, path, os.Getenv("GIT_PROTOCOL"), stdin, stdout, stderr)
	}
	var exit *helper.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		return exit.Code
	case errors.Is(err, errFallback):
		return fallback(ctx, a, stdin, stdout, stderr)
	}
	fmt.Fprintf(stderr, "git-remote-daemon ssh-mux: %v\n", err)
	return 255 // as ssh, for a lost connection
}

// fallback runs the ordinary ssh command with git's arguments.
func fallback(ctx context.Context, a ShimArgs, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := gitexec.Program(ctx, "sh", append([]string{"-c", a.Fallback + ` "$@"`, a.Fallback}, a.SSH...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return gitexec.ExitCode(ee.ProcessState)
	}
	fmt.Fprintf(stderr, "git-remote-daemon ssh-mux: %v\n", err)
	return 255
}

func shimSession(ctx context.Context, socket, service, path, gitProtocol string, stdin io.Reader, stdout, stderr io.Writer) error {
	if err := checkPrivateSocket(socket); err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			fmt.Fprintf(stderr, "git-remote-daemon ssh-mux: %v; using ssh\n", err)
		}
		return errFallback
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return errFallback
	}
	sock := c.(*net.UnixConn)
	defer sock.Close()
	stop := context.AfterFunc(ctx, func() { sock.Close() })
	defer stop()
	req := helper.RequestFrame{Service: service, GitProtocol: gitProtocol, Path: path}
	if err := req.Encode(sock); err != nil {
		return errFallback
	}
	f, err := helper.ReadFrame(sock)
	if err != nil {
		return errFallback // refused before anything ran
	}
	switch f := f.(type) {
	case helper.ReadyFrame:
	case helper.ErrorFrame:
		return errors.New(f.Message)
	default:
		return fmt.Errorf("%w: %c frame before READY", helper.ErrFrame, f.Type())
	}
	// git's bytes to the service, then EOF (a half close: the service's
	// answer may still come, as with ssh).
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, helper.MaxData)
		for {
			n, rerr := stdin.Read(buf)
			if n > 0 {
				if (helper.DataFrame{Data: buf[:n]}).Encode(sock) != nil {
					return
				}
			}
			if rerr != nil {
				if errors.Is(rerr, io.EOF) {
					_ = helper.EOFFrame{}.Encode(sock)
				} else {
					sock.Close()
				}
				return
			}
		}
	}()
	// Not waited for: git may keep its end of our stdin open until we
	// exit, as it does with ssh.
	for {
		f, err := helper.ReadFrame(sock)
		if err != nil {
			return fmt.Errorf("the connection to the far side was lost before %s ended: %w", service, err)
		}
		switch f := f.(type) {
		case helper.DataFrame:
			if _, err := stdout.Write(f.Data); err != nil {
				return fmt.Errorf("writing to git: %w", err)
			}
		case helper.StderrFrame:
			_, _ = stderr.Write(f.Text)
		case helper.ExitFrame:
			if f.Code == 0 {
				return nil
			}
			return &helper.ExitError{Service: service, Code: int(f.Code)}
		case helper.ErrorFrame:
			return errors.New(f.Message)
		default:
			return fmt.Errorf("%w: unexpected %c frame", helper.ErrFrame, f.Type())
		}
	}
}
