package thnode

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// recorder listens on a unix socket and records, in order, what each
// connection sent before it closed.
type recorder struct {
	l    net.Listener
	path string
	got  chan string
}

func newRecorder(t *testing.T, path string) *recorder {
	t.Helper()
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	r := &recorder{l: l, path: path, got: make(chan string, 16)}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			line, _ := bufio.NewReader(c).ReadString('\n')
			if line != "" && line != "MARK\n" {
				_, _ = c.Write([]byte("ERR recorded\n"))
			}
			c.Close()
			r.got <- line
		}
	}()
	return r
}

// before returns what connections sent before now: it connects with a
// mark and collects until the mark comes back (connections are
// accepted in order).
func (r *recorder) before(t *testing.T) []string {
	t.Helper()
	c, err := net.Dial("unix", r.path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("MARK\n")); err != nil {
		t.Fatal(err)
	}
	c.Close()
	var out []string
	for line := range r.got {
		if line == "MARK\n" {
			return out
		}
		out = append(out, line)
	}
	return out
}

// TestDialLocalRefusesUntrustedDirectory: a socket directory that is a
// symbolic link, or that others may enter, is not used: DialLocal sends
// nothing to the socket in it and says why; a private directory is used.
func TestDialLocalRefusesUntrustedDirectory(t *testing.T) {
	id := identity(t)
	hn := id.Hashname()
	addr := Addr{Hashname: hn}
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string) string // returns the directory the socket is in
		want  string                                // in the error; "" = trusted
	}{
		{"symlink", func(t *testing.T, dir string) string {
			real := filepath.Join(t.TempDir(), "real")
			if err := os.Mkdir(real, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(real, dir); err != nil {
				t.Fatal(err)
			}
			return real
		}, "is a symbolic link"},
		{"mode 0755", func(t *testing.T, dir string) string {
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			return dir
		}, "has mode 0755, not 0700"},
		{"private", func(t *testing.T, dir string) string {
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			return dir
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
			path := SocketPath(hn)
			real := tc.setup(t, filepath.Dir(path))
			rec := newRecorder(t, filepath.Join(real, filepath.Base(path)))

			_, err := DialLocal(context.Background(), hn, addr, ServiceGit)
			got := rec.before(t)
			if tc.want == "" {
				if err == nil || errors.Is(err, ErrUntrustedSocket) || err.Error() != "recorded" {
					t.Fatalf("a private directory: DialLocal = %v, want the server's answer", err)
				}
				if len(got) != 1 || !strings.HasPrefix(got[0], "DIAL git th::") {
					t.Fatalf("the server got %q", got)
				}
				return
			}
			if !errors.Is(err, ErrUntrustedSocket) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), filepath.Dir(path)) {
				t.Errorf("DialLocal = %v, want %v naming %s and %q", err, ErrUntrustedSocket, filepath.Dir(path), tc.want)
			}
			if len(got) != 0 {
				t.Errorf("the socket in an untrusted directory got %q", got)
			}
		})
	}
}

// TestServeLocalRefusesOpenDirectory: the daemon does not lend its node
// on a socket in a directory others may enter.
func TestServeLocalRefusesOpenDirectory(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	id := identity(t)
	dir := filepath.Dir(SocketPath(id.Hashname()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	n, err := Start(context.Background(), Options{Identity: id, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := n.ServeLocal(); !errors.Is(err, ErrUntrustedSocket) {
		t.Fatalf("ServeLocal in a 0755 directory = %v, want %v", err, ErrUntrustedSocket)
	}
	if _, err := os.Lstat(SocketPath(id.Hashname())); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a socket was made: %v", err)
	}
}
