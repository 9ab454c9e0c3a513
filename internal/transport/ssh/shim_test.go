package ssh

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/git-remote-daemon/git-remote-daemon/helper"
)

// sqQuote quotes as git's sq_quote_buf does.
func sqQuote(s string) string {
	var b strings.Builder
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		if s[i] == '\'' || s[i] == '!' {
			b.WriteString("'\\" + string(s[i]) + "'")
		} else {
			b.WriteByte(s[i])
		}
	}
	b.WriteByte('\'')
	return b.String()
}

func TestParseRemoteCommand(t *testing.T) {
	for _, tc := range []struct{ cmd, service, path string }{
		{"git-upload-pack '/srv/x.git'", helper.UploadPack, "/srv/x.git"},
		{"git-receive-pack '~/x'", helper.ReceivePack, "~/x"},
		{"git-upload-pack '/a b/it'\\''s'\\!''", helper.UploadPack, "/a b/it's!"},
		{"git-upload-pack " + sqQuote("/x'y!z"), helper.UploadPack, "/x'y!z"},
	} {
		service, path, err := ParseRemoteCommand(tc.cmd)
		if err != nil || service != tc.service || path != tc.path {
			t.Errorf("ParseRemoteCommand(%q) = %q, %q, %v", tc.cmd, service, path, err)
		}
	}
	for _, cmd := range []string{"", "ls '/x'", "git-upload-archive '/x'", "git-upload-pack /x", "git-upload-pack '/x",
		"git-upload-pack ''", "git-upload-pack", "git-upload-pack '/x' '/y'", "git-upload-pack '/x'\\n"} {
		if s, p, err := ParseRemoteCommand(cmd); err == nil {
			t.Errorf("ParseRemoteCommand(%q) = %q, %q, want an error", cmd, s, p)
		}
	}
}

func FuzzParseRemoteCommand(f *testing.F) {
	f.Add("/srv/x.git")
	f.Add("it's!")
	f.Fuzz(func(t *testing.T, path string) {
		_, _, _ = ParseRemoteCommand(path) // never panics
		if path == "" {
			return
		}
		service, got, err := ParseRemoteCommand("git-upload-pack " + sqQuote(path))
		if err != nil || service != helper.UploadPack || got != path {
			t.Fatalf("path %q: got %q, %v", path, got, err)
		}
	})
}

func TestParseShimArgs(t *testing.T) {
	a, err := ParseShimArgs([]string{"--socket", "/s", "--fallback", "ssh -o x", "--", "-o", "SendEnv=GIT_PROTOCOL", "-p", "22", "host", "git-upload-pack '/x'"})
	if err != nil || a.Socket != "/s" || a.Fallback != "ssh -o x" || len(a.SSH) != 6 {
		t.Fatalf("ParseShimArgs = %+v, %v", a, err)
	}
	for _, args := range [][]string{nil, {"--socket"}, {"--socket", "/s", "--", "h", "c"}, {"--fallback", "ssh", "--", "h", "c"},
		{"--socket", "/s", "--fallback", "ssh", "--", "c"}, {"--bogus"}} {
		if a, err := ParseShimArgs(args); err == nil {
			t.Errorf("ParseShimArgs(%q) = %+v, want an error", args, a)
		}
	}
}

// privateSocket listens on a socket in a private directory, as the
// daemon does; serve handles each connection.
func privateSocket(t *testing.T, serve func(net.Conn)) string {
	dir := filepath.Join(t.TempDir(), "d")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "s")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serve(c)
		}
	}()
	return path
}

func TestCheckPrivateSocket(t *testing.T) {
	path := privateSocket(t, func(c net.Conn) { c.Close() })
	if err := checkPrivateSocket(path); err != nil {
		t.Fatalf("a private socket refused: %v", err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := checkPrivateSocket(path); err == nil {
		t.Error("a socket of mode 0666 accepted")
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := checkPrivateSocket(path); err == nil {
		t.Error("a socket in a directory of mode 0755 accepted")
	}
	file := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := checkPrivateSocket(file); err == nil {
		t.Error("a regular file accepted")
	}
}

// shimArgs runs the fallback as a command printing its arguments.
func shimArgs(socket string) ShimArgs {
	return ShimArgs{Socket: socket, Fallback: `printf '<%s>'`, SSH: []string{"-p", "22", "host", "git-upload-pack '/x'"}}
}

// TestShimFallsBack: with no socket, or a socket that closes before any
// frame (the stream could not be opened), the ordinary ssh runs with
// git's arguments.
func TestShimFallsBack(t *testing.T) {
	refusing := privateSocket(t, func(c net.Conn) { c.Close() })
	for _, socket := range []string{filepath.Join(t.TempDir(), "none"), refusing} {
		var out, errOut bytes.Buffer
		code := Shim(context.Background(), shimArgs(socket), strings.NewReader(""), &out, &errOut)
		if code != 0 || out.String() != "<-p><22><host><git-upload-pack '/x'>" {
			t.Errorf("socket %s: exit %d, stdout %q, stderr %q", socket, code, out.String(), errOut.String())
		}
	}
}

// TestShimSession: the request carries the service, path and
// GIT_PROTOCOL; stdout and stderr frames reach git's stdout and stderr;
// the EXIT status is the shim's. An ERROR is no reason to fall back.
func TestShimSession(t *testing.T) {
	t.Setenv("GIT_PROTOCOL", "version=2")
	got := make(chan helper.RequestFrame, 1)
	socket := privateSocket(t, func(c net.Conn) {
		defer c.Close()
		f, err := helper.ReadFrame(c)
		if err != nil {
			return
		}
		got <- f.(helper.RequestFrame)
		_ = helper.ReadyFrame{}.Encode(c)
		_ = helper.DataFrame{Data: []byte("out")}.Encode(c)
		_ = helper.StderrFrame{Text: []byte("err")}.Encode(c)
		if f, err := helper.ReadFrame(c); err == nil {
			if d, ok := f.(helper.DataFrame); ok {
				_ = helper.DataFrame{Data: d.Data}.Encode(c) // echo
			}
		}
		if f, err := helper.ReadFrame(c); err == nil && f.Type() == helper.TypeEOF {
			_ = helper.ExitFrame{Code: 3}.Encode(c)
		}
	})
	var out, errOut bytes.Buffer
	code := Shim(context.Background(), shimArgs(socket), strings.NewReader("in"), &out, &errOut)
	if code != 3 || out.String() != "outin" || errOut.String() != "err" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out.String(), errOut.String())
	}
	if r := <-got; r != (helper.RequestFrame{Service: helper.UploadPack, GitProtocol: "version=2", Path: "/x"}) {
		t.Fatalf("request %+v", r)
	}

	refusing := privateSocket(t, func(c net.Conn) {
		defer c.Close()
		if _, err := helper.ReadFrame(c); err == nil {
			_ = helper.ErrorFrame{Message: "repository not found: /x"}.Encode(c)
		}
	})
	out.Reset()
	errOut.Reset()
	code = Shim(context.Background(), shimArgs(refusing), strings.NewReader(""), &out, &errOut)
	if code == 0 || out.Len() != 0 || !strings.Contains(errOut.String(), "repository not found") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out.String(), errOut.String())
	}
}
