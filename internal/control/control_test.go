package control

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/git-remote-daemon/git-remote-daemon/protocol"
)

// serve starts a control server at path whose handler records the
// commands and refuses PUSH to "nosuch".
func serve(t *testing.T, path string) *[]string {
	t.Helper()
	srv, err := Listen(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	got := &[]string{}
	done := make(chan error, 1)
	go func() {
		done <- srv.Serve(ctx, func(_ context.Context, m protocol.Message) error {
			if p, ok := m.(protocol.Push); ok && p.Remote == "nosuch" {
				return errors.New("no such remote")
			}
			mu.Lock()
			defer mu.Unlock()
			*got = append(*got, m.String())
			return nil
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		if err := srv.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			t.Error(err)
		}
		if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("socket left behind: %v", err)
		}
	})
	return got
}

func TestSendCommands(t *testing.T) {
	path := filepath.Join(t.TempDir(), "control.sock")
	got := serve(t, path)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("socket mode %o, want 600", perm)
	}
	ctx := context.Background()
	if err := Send(ctx, path, protocol.Pause{}, protocol.Push{Remote: "origin"}, protocol.Reload{}, protocol.Resume{}); err != nil {
		t.Fatal(err)
	}
	want := "PAUSE|PUSH origin|RELOAD|RESUME"
	if s := strings.Join(*got, "|"); s != want {
		t.Errorf("handled %q, want %q", s, want)
	}

	// A refused command stops the batch and carries the daemon's words.
	err = Send(ctx, path, protocol.Push{Remote: "nosuch"}, protocol.Reload{})
	var re *RefusedError
	if !errors.As(err, &re) || re.Remote != "nosuch" || re.Text != "no such remote" {
		t.Fatalf("err %v, want the refusal of nosuch", err)
	}
	if err.Error() != "nosuch: no such remote" {
		t.Errorf("message %q", err)
	}
	if len(*got) != 4 {
		t.Errorf("handled after a refusal: %q", *got)
	}
}

// TestRawLines speaks to the socket as any client could: lines that are
// not commands are answered with an ERROR, and the connection goes on.
func TestRawLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "control.sock")
	got := serve(t, path)
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	in := "CONNECTED origin\nHELLO\nPUSH\n" + strings.Repeat("x", protocol.MaxLineLength+10) + "\nPUSH origin\n"
	if _, err := conn.Write([]byte(in)); err != nil {
		t.Fatal(err)
	}
	r := protocol.NewReader(conn)
	want := []string{
		"ERROR * line 1: malformed message: CONNECTED is sent by the daemon, not to it",
		"ERROR * line 2: malformed message: ", // the parser's words
		"ERROR * line 3: malformed message: ",
		"ERROR * line 4: line too long",
		"OK",
	}
	for i, w := range want {
		line, err := r.ReadLine()
		if err != nil {
			t.Fatalf("answer %d: %v", i+1, err)
		}
		if line != w && !(strings.HasSuffix(w, ": ") && strings.HasPrefix(line, w)) {
			t.Errorf("answer %d = %q, want %q", i+1, line, w)
		}
	}
	conn.Close()
	if s := strings.Join(*got, "|"); s != "PUSH origin" {
		t.Errorf("handled %q", s)
	}
}

// TestLongPath: a repository deep in the file system has a socket path
// longer than a socket address holds; it is reached all the same.
func TestLongPath(t *testing.T) {
	dir := filepath.Join(t.TempDir(), strings.Repeat("d", 60), strings.Repeat("e", 60))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "control.sock")
	got := serve(t, path)
	if err := Send(context.Background(), path, protocol.Reload{}); err != nil {
		t.Fatal(err)
	}
	if len(*got) != 1 {
		t.Errorf("handled %q", *got)
	}
}

func TestNoDaemon(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "control.sock")
	if err := Send(context.Background(), path, protocol.Pause{}); !errors.Is(err, ErrNoDaemon) {
		t.Errorf("no socket: %v, want ErrNoDaemon", err)
	}
	// A socket left by a daemon that died: nobody listens.
	srv, err := Listen(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv.ln.Close() // closed without removing the file, as by kill -9
	if _, err := os.Lstat(path); err != nil {
		t.Fatal(err)
	}
	if err := Send(context.Background(), path, protocol.Pause{}); !errors.Is(err, ErrNoDaemon) {
		t.Errorf("stale socket: %v, want ErrNoDaemon", err)
	}
	// The next daemon replaces it.
	got := serve(t, path)
	if err := Send(context.Background(), path, protocol.Pause{}); err != nil || len(*got) != 1 {
		t.Errorf("after restart: %v, handled %q", err, *got)
	}
}

func TestNotASocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "control.sock")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Send(context.Background(), path, protocol.Pause{}); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("Send to a file: %v", err)
	}
	if _, err := Listen(path, nil); err == nil {
		t.Error("Listen replaced a file that is not a socket")
	}
}

func FuzzParseReply(f *testing.F) {
	for _, s := range []string{"OK", "ERROR * bad", "ERROR origin PUSH: no such remote", "CONNECTED x", "", "OK x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		err := parseReply(line)
		if line == OK && err != nil {
			t.Fatalf("OK refused: %v", err)
		}
		if line != OK && err == nil {
			t.Fatalf("%q taken as OK", line)
		}
	})
}

// FuzzAnswer: whatever line a client sends, the answer is one line, OK
// only for a command, which the handler then got.
func FuzzAnswer(f *testing.F) {
	for _, s := range []string{"PAUSE", "RESUME", "RELOAD", "PUSH origin", "PUSH", "PUSH a b", "CONNECTED x", "", "ERROR * x", "pause"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		called := false
		reply := answer(context.Background(), line, 1, func(_ context.Context, m protocol.Message) error {
			called = true
			return nil
		})
		s := reply.String()
		if strings.ContainsAny(s, "\n\r") {
			t.Fatalf("answer %q is not one line", s)
		}
		if (s == OK) != called {
			t.Fatalf("answer %q, handler called %v", s, called)
		}
		if s != OK && parseReply(s) == nil {
			t.Fatalf("refusal %q reads as OK", s)
		}
	})
}
