package helper

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// runPipes runs Run with pipes for stdin and stdout, as git runs a helper.
type runPipes struct {
	stdin  *io.PipeWriter
	stdout *bufio.Reader
	stderr *syncBuffer
	done   chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startRun(t *testing.T, ctx context.Context, cfg Config) *runPipes {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	p := &runPipes{stdin: inW, stdout: bufio.NewReader(outR), stderr: &syncBuffer{}, done: make(chan error, 1)}
	cfg.Stdin, cfg.Stdout, cfg.Stderr = inR, outW, p.stderr
	if cfg.URL == "" {
		cfg.URL = "th::peer/repo"
	}
	if cfg.GitProtocol == nil {
		cfg.GitProtocol = func(_ context.Context, service string) (string, error) {
			return ProtocolFor("2", service)
		}
	}
	go func() {
		err := Run(ctx, cfg)
		outW.Close()
		p.done <- err
	}()
	t.Cleanup(func() { inW.Close(); outR.Close() })
	return p
}

func (p *runPipes) send(t *testing.T, s string) {
	t.Helper()
	if _, err := io.WriteString(p.stdin, s); err != nil {
		t.Fatalf("writing %q to the helper: %v", s, err)
	}
}

// expect reads exactly len(want) bytes of the helper's stdout.
func (p *runPipes) expect(t *testing.T, want string) {
	t.Helper()
	got := make([]byte, len(want))
	if _, err := io.ReadFull(p.stdout, got); err != nil || string(got) != want {
		t.Fatalf("helper stdout = %q, %v; want %q", got, err, want)
	}
}

func (p *runPipes) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-p.done:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
		return nil
	}
}

func noDial(context.Context, Request) (Conn, error) {
	return nil, errors.New("unexpected dial")
}

func TestRunCommands(t *testing.T) {
	in := strings.Join([]string{
		"capabilities",
		"option verbosity 2",
		"option progress true",
		"option progress false",
		"option depth 1",
		"option followtags true",
		"option progress maybe",
		"option verbosity x",
		"",
		"capabilities", // after the blank line: never read
	}, "\n") + "\n"
	var out, errOut bytes.Buffer
	err := Run(t.Context(), Config{Stdin: strings.NewReader(in), Stdout: &out, Stderr: &errOut, Dial: noDial})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	want := "connect\noption\n\n" + "ok\nok\nok\n" + "unsupported\nunsupported\n" +
		"error progress must be true or false\nerror verbosity must be a number\n"
	if out.String() != want {
		t.Errorf("stdout = %q, want %q", out.String(), want)
	}
	if errOut.Len() != 0 {
		t.Errorf("stderr = %q", errOut.String())
	}
}

func TestRunStdinEOF(t *testing.T) {
	for _, in := range []string{"", "capabilities\n", "capabilities\ncapab"} {
		var out bytes.Buffer
		if err := Run(t.Context(), Config{Stdin: strings.NewReader(in), Stdout: &out, Dial: noDial}); err != nil {
			t.Errorf("stdin %q: Run = %v, want nil", in, err)
		}
	}
}

// git going away (stdin EOF) ends the helper at once, wherever it waits.
func TestRunStdinEOFEndsPromptly(t *testing.T) {
	t.Run("commands", func(t *testing.T) {
		p := startRun(t, t.Context(), Config{Dial: noDial})
		p.send(t, "capabilities\n")
		p.expect(t, Capabilities)
		p.stdin.Close()
		if err := p.wait(t); err != nil {
			t.Fatalf("Run = %v", err)
		}
	})
	t.Run("waiting for the peer", func(t *testing.T) {
		peer, conn := net.Pipe()
		defer peer.Close()
		p := startRun(t, t.Context(), Config{Dial: func(context.Context, Request) (Conn, error) { return conn, nil }})
		go io.Copy(io.Discard, peer) // a peer that never answers
		p.send(t, "connect git-upload-pack\n")
		p.stdin.Close()
		if err := p.wait(t); err != nil {
			t.Fatalf("Run = %v", err)
		}
	})
}

func TestRunCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	peer, conn := net.Pipe()
	defer peer.Close()
	p := startRun(t, ctx, Config{Dial: func(context.Context, Request) (Conn, error) { return conn, nil }})
	p.send(t, "connect git-upload-pack\n")
	if _, err := ReadFrame(peer); err != nil {
		t.Fatal(err)
	}
	(ReadyFrame{}).Encode(peer)
	p.expect(t, "\n")
	cancel()
	if err := p.wait(t); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
}

func TestRunUnknownCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	err := Run(t.Context(), Config{Stdin: strings.NewReader("list\n"), Stdout: &out, Stderr: &errOut, Dial: noDial})
	if !errors.Is(err, ErrUnknownCommand) {
		t.Fatalf("Run = %v, want ErrUnknownCommand", err)
	}
	if got, want := errOut.String(), "fatal: unknown command: \"list\"\n"; got != want {
		t.Errorf("stderr = %q, want %q", got, want)
	}
	if out.Len() != 0 {
		t.Errorf("stdout = %q", out.String())
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

func TestRunStdoutWriteFails(t *testing.T) {
	err := Run(t.Context(), Config{Stdin: strings.NewReader("capabilities\n"), Stdout: failWriter{}, Dial: noDial})
	if err == nil || !strings.Contains(err.Error(), "broken pipe") {
		t.Fatalf("Run = %v", err)
	}
}

func TestRunDialFails(t *testing.T) {
	var out, errOut bytes.Buffer
	dial := func(context.Context, Request) (Conn, error) { return nil, errors.New("no route to peer") }
	err := Run(t.Context(), Config{
		Stdin: strings.NewReader("connect git-receive-pack\n"), Stdout: &out, Stderr: &errOut,
		URL: "th::peer/repo", Dial: dial,
		GitProtocol: func(context.Context, string) (string, error) { return "", nil },
	})
	if err == nil {
		t.Fatal("Run succeeded")
	}
	if got, want := errOut.String(), "fatal: unable to connect to th::peer/repo: no route to peer\n"; got != want {
		t.Errorf("stderr = %q, want %q", got, want)
	}
	if out.Len() != 0 {
		t.Errorf("stdout = %q, want nothing: no empty line when the connection failed", out.String())
	}
}

func TestRunUnsupportedService(t *testing.T) {
	var out, errOut bytes.Buffer
	err := Run(t.Context(), Config{Stdin: strings.NewReader("connect git-upload-archive\n"), Stdout: &out, Stderr: &errOut, Dial: noDial})
	if err == nil || errOut.String() != "fatal: unsupported service \"git-upload-archive\"\n" || out.Len() != 0 {
		t.Fatalf("Run = %v; stderr %q; stdout %q", err, errOut.String(), out.String())
	}
}

// A whole session against a scripted peer: request, stderr before and
// after READY, data both ways, half close, exit status.
func TestRunSession(t *testing.T) {
	peer, conn := net.Pipe()
	defer peer.Close()
	var gotReq Request
	p := startRun(t, t.Context(), Config{
		Remote: "origin", URL: "th::peer/repo", Path: "/srv/repo.git",
		Dial: func(_ context.Context, r Request) (Conn, error) { gotReq = r; return conn, nil },
	})
	p.send(t, "option verbosity 0\n")
	p.expect(t, "ok\n")
	p.send(t, "option progress true\n")
	p.expect(t, "ok\n")
	p.send(t, "connect git-upload-pack\n")

	f, err := ReadFrame(peer)
	if want := (RequestFrame{Service: UploadPack, GitProtocol: "version=2", Path: "/srv/repo.git"}); err != nil || f != want {
		t.Fatalf("request = %#v, %v; want %#v", f, err, want)
	}
	wantReq := Request{Service: UploadPack, GitProtocol: "version=2", Path: "/srv/repo.git",
		Remote: "origin", URL: "th::peer/repo", Verbosity: 0, Progress: true}
	if gotReq != wantReq {
		t.Errorf("Dial got %#v, want %#v", gotReq, wantReq)
	}
	send := func(f Frame) {
		t.Helper()
		if err := f.Encode(peer); err != nil {
			t.Fatal(err)
		}
	}
	send(StderrFrame{Text: []byte("warming up\n")})
	send(ReadyFrame{})
	p.expect(t, "\n")
	send(DataFrame{Data: []byte("000eversion 2\n0000")})
	p.expect(t, "000eversion 2\n0000")

	// git's request, then git closes its end (half close).
	p.send(t, "0014command=ls-refs\n0000")
	p.stdin.Close()
	var fromGit bytes.Buffer
	for {
		f, err := ReadFrame(peer)
		if err != nil {
			t.Fatal(err)
		}
		if d, ok := f.(DataFrame); ok {
			fromGit.Write(d.Data)
			continue
		}
		if _, ok := f.(EOFFrame); !ok {
			t.Fatalf("got %#v, want DATA or EOF", f)
		}
		break
	}
	if fromGit.String() != "0014command=ls-refs\n0000" {
		t.Errorf("peer got %q", fromGit.String())
	}
	// The service still answers after the half close.
	send(DataFrame{Data: []byte("0000")})
	p.expect(t, "0000")
	send(StderrFrame{Text: []byte("bye \x1b[31mred\n")})
	send(ExitFrame{Code: 3})

	err = p.wait(t)
	var exit *ExitError
	if !errors.As(err, &exit) || exit.Code != 3 || exit.Service != UploadPack {
		t.Fatalf("Run = %v, want ExitError 3", err)
	}
	if rest, _ := io.ReadAll(p.stdout); len(rest) != 0 {
		t.Errorf("more stdout: %q", rest)
	}
	if got, want := p.stderr.String(), "warming up\nbye ?[31mred\n"; got != want {
		t.Errorf("stderr = %q, want %q", got, want)
	}
}

func TestRunPeerRefuses(t *testing.T) {
	peer, conn := net.Pipe()
	defer peer.Close()
	p := startRun(t, t.Context(), Config{Dial: func(context.Context, Request) (Conn, error) { return conn, nil }})
	p.send(t, "connect git-receive-pack\n")
	if f, err := ReadFrame(peer); err != nil || f != (RequestFrame{Service: ReceivePack}) {
		t.Fatalf("request = %#v, %v", f, err)
	}
	(ErrorFrame{Message: "not authorized: read-only\x07"}).Encode(peer)
	err := p.wait(t)
	var remote *RemoteError
	if !errors.As(err, &remote) {
		t.Fatalf("Run = %v, want RemoteError", err)
	}
	if got, want := p.stderr.String(), "fatal: remote error: not authorized: read-only?\n"; got != want {
		t.Errorf("stderr = %q, want %q", got, want)
	}
	if rest, _ := io.ReadAll(p.stdout); len(rest) != 0 {
		t.Errorf("stdout = %q, want nothing", rest)
	}
}

func TestRunConnectionLost(t *testing.T) {
	for _, tt := range []struct {
		name   string
		script func(peer net.Conn)
		want   error
	}{
		{"closed", func(peer net.Conn) { peer.Close() }, ErrConnectionLost},
		{"closed mid-frame", func(peer net.Conn) { peer.Write([]byte{'D', 0, 0, 1, 0, 'x'}); peer.Close() }, ErrConnectionLost},
		{"garbage", func(peer net.Conn) { peer.Write([]byte("HTTP/1.1 400\r\n")) }, ErrFrame},
		{"request echoed", func(peer net.Conn) { (RequestFrame{Service: UploadPack}).Encode(peer) }, ErrFrame},
	} {
		t.Run(tt.name, func(t *testing.T) {
			peer, conn := net.Pipe()
			defer peer.Close()
			p := startRun(t, t.Context(), Config{Dial: func(context.Context, Request) (Conn, error) { return conn, nil }})
			p.send(t, "connect git-upload-pack\n")
			ReadFrame(peer)
			(ReadyFrame{}).Encode(peer)
			p.expect(t, "\n")
			go io.Copy(io.Discard, peer)
			tt.script(peer)
			err := p.wait(t)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Run = %v, want %v", err, tt.want)
			}
			if !strings.HasPrefix(p.stderr.String(), "fatal: th::peer/repo: ") {
				t.Errorf("stderr = %q", p.stderr.String())
			}
		})
	}
}
