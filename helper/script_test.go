package helper

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// The test binary doubles as git-remote-testh: testscript.Main puts a copy
// of it on PATH under that name, so `git clone testh::/abs/repo.git` runs
// it as git runs any remote helper. Its Dial connects to a unix socket
// served by the test process itself (TESTH_SOCKET), where Serve runs the
// real git upload-pack / receive-pack: the server is another process, as
// in real use, so killing a session there is what a peer vanishing does.
func TestMain(m *testing.M) {
	if filepath.Base(os.Args[0]) != "git-remote-testh" {
		// The served side's git runs in this process's environment:
		// keep the user's configuration out of it too.
		os.Setenv("GIT_CONFIG_NOSYSTEM", "1")
		os.Setenv("GIT_CONFIG_GLOBAL", os.DevNull)
	}
	testscript.Main(m, map[string]func(){"git-remote-testh": testhMain})
}

// testhMain is git-remote-testh's main: argument handling only.
func testhMain() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: git-remote-testh <remote> <url>")
		os.Exit(129)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := WithParent(ctx, 500*time.Millisecond)
	defer cancel()
	logger := slog.New(slog.DiscardHandler)
	if os.Getenv("TESTH_DEBUG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	sock := os.Getenv("TESTH_SOCKET")
	err := Run(ctx, Config{
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
		Remote: os.Args[1], URL: os.Args[2], Path: os.Args[2],
		Dial: func(ctx context.Context, _ Request) (Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
		Logger: logger,
	})
	var exit *ExitError
	switch {
	case errors.As(err, &exit):
		os.Exit(exit.Code)
	case err != nil:
		os.Exit(128)
	}
	os.Exit(0)
}

func TestScript(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		Setup:               setupScript,
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"served":   cmdServed,
			"cutafter": cmdCutAfter,
			"mkrepo":   cmdMkrepo,
			"randfile": cmdRandfile,
		},
	})
}

type serverKey struct{}

// testServer serves every connection on its socket with Serve, resolving
// the requested path as an absolute directory. Paths ending in "-ro.git"
// are read-only. It records each session for the "served" command.
type testServer struct {
	ln       net.Listener
	cutAfter int64 // if > 0, the next sessions' streams break after this many bytes read

	mu       sync.Mutex
	sessions sync.WaitGroup
	log      []string
}

func setupScript(env *testscript.Env) error {
	home := filepath.Join(env.WorkDir, "home")
	if err := os.MkdirAll(home, 0o755); err != nil {
		return err
	}
	gitconfig := "[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n"
	if err := os.WriteFile(filepath.Join(home, ".gitconfig"), []byte(gitconfig), 0o644); err != nil {
		return err
	}
	// A short directory: a unix socket path must fit in 108 bytes.
	sockDir, err := os.MkdirTemp("", "testh")
	if err != nil {
		return err
	}
	ln, err := net.Listen("unix", filepath.Join(sockDir, "s"))
	if err != nil {
		return err
	}
	srv := &testServer{ln: ln}
	go srv.accept()
	env.Defer(func() {
		ln.Close()
		srv.sessions.Wait()
		os.RemoveAll(sockDir)
	})
	env.Values[serverKey{}] = srv
	for k, v := range map[string]string{
		"HOME":                home,
		"GIT_CONFIG_NOSYSTEM": "1",
		"GIT_AUTHOR_NAME":     "A U Thor",
		"GIT_AUTHOR_EMAIL":    "author@example.com",
		"GIT_COMMITTER_NAME":  "C O Mitter",
		"GIT_COMMITTER_EMAIL": "committer@example.com",
		"GIT_TERMINAL_PROMPT": "0",
		"TESTH_SOCKET":        ln.Addr().String(),
		// A -race build of git-remote-testh would sleep 1s at exit.
		"GORACE": "atexit_sleep_ms=0 " + os.Getenv("GORACE"),
	} {
		env.Setenv(k, v)
	}
	return nil
}

func (s *testServer) accept() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		cut := s.cutAfter
		s.mu.Unlock()
		var stream io.ReadWriteCloser = c
		if cut > 0 {
			stream = &cutStream{ReadWriteCloser: c, left: cut}
		}
		s.sessions.Add(1)
		go func() {
			defer s.sessions.Done()
			var req Access
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			err := Serve(ctx, stream, ServeOptions{
				Resolve: func(_ context.Context, path string) (string, error) {
					if !filepath.IsAbs(path) {
						return "", fmt.Errorf("%w: %q is not absolute", ErrRepositoryNotFound, path)
					}
					return path, nil
				},
				Authorize: func(_ context.Context, a Access) error {
					req = a
					if a.Service == ReceivePack && strings.HasSuffix(a.Path, "-ro.git") {
						return fmt.Errorf("%w: %s is read-only", ErrNotAuthorized, a.Path)
					}
					return nil
				},
			})
			s.mu.Lock()
			defer s.mu.Unlock()
			s.log = append(s.log, fmt.Sprintf("%s protocol=%s err=%v", req.Service, req.GitProtocol, err))
		}()
	}
}

// cutStream breaks after left bytes were read, as a vanishing peer does.
type cutStream struct {
	io.ReadWriteCloser
	left int64
}

func (c *cutStream) Read(p []byte) (int, error) {
	if c.left <= 0 {
		c.ReadWriteCloser.Close()
		return 0, errors.New("cut: peer vanished")
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.ReadWriteCloser.Read(p)
	c.left -= int64(n)
	return n, err
}

// served waits for the sessions so far to end, prints one line per
// session ("<service> protocol=<GIT_PROTOCOL> err=<Serve's error>") and
// forgets them.
func cmdServed(ts *testscript.TestScript, neg bool, args []string) {
	srv := ts.Value(serverKey{}).(*testServer)
	done := make(chan struct{})
	go func() { srv.sessions.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		ts.Fatalf("sessions still running after 10s")
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	for _, l := range srv.log {
		fmt.Fprintln(ts.Stdout(), l)
	}
	srv.log = nil
}

// cutafter N: the next sessions' streams break after N bytes from the
// client (0: never).
func cmdCutAfter(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: cutafter bytes")
	}
	n, err := strconv.ParseInt(args[0], 10, 64)
	ts.Check(err)
	srv := ts.Value(serverKey{}).(*testServer)
	srv.mu.Lock()
	srv.cutAfter = n
	srv.mu.Unlock()
}

// mkrepo dir commits: a bare repository on main whose every commit adds
// one file in one of 50 directories, so each commit brings four objects
// (commit, root tree, subtree, blob), through git fast-import.
func cmdMkrepo(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: mkrepo dir commits")
	}
	dir := ts.MkAbs(args[0])
	n, err := strconv.Atoi(args[1])
	ts.Check(err)
	ts.Check(ts.Exec("git", "init", "-q", "--bare", dir))
	cmd := exec.Command("git", "--git-dir", dir, "fast-import", "--quiet")
	cmd.Env = scriptEnv(ts)
	in, err := cmd.StdinPipe()
	ts.Check(err)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	ts.Check(cmd.Start())
	w := bufio.NewWriter(in)
	for i := range n {
		content := fmt.Sprintf("file %d\n", i)
		fmt.Fprintf(w, "commit refs/heads/main\ncommitter C O Mitter <c@example.com> %d +0000\ndata %d\ncommit %d\n",
			1700000000+i, len(fmt.Sprintf("commit %d\n", i)), i)
		fmt.Fprintf(w, "M 100644 inline d%02d/f%05d\ndata %d\n%s\n", i%50, i, len(content), content)
	}
	ts.Check(w.Flush())
	ts.Check(in.Close())
	if err := cmd.Wait(); err != nil {
		ts.Fatalf("fast-import: %v\n%s", err, stderr.String())
	}
}

// randfile path size: size incompressible (but reproducible) bytes.
func cmdRandfile(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: randfile path size")
	}
	size, err := strconv.Atoi(args[1])
	ts.Check(err)
	r := rand.NewChaCha8([32]byte{1})
	b := make([]byte, size)
	_, _ = r.Read(b)
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), b, 0o644))
}

func scriptEnv(ts *testscript.TestScript) []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "GIT_CONFIG_NOSYSTEM", "GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"} {
		env = append(env, k+"="+ts.Getenv(k))
	}
	return env
}
