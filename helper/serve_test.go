package helper

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// git runs git for a test fixture, isolated from the user's configuration.
func git(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL="+os.DevNull,
		"GIT_AUTHOR_NAME=A", "GIT_AUTHOR_EMAIL=a@example.com",
		"GIT_COMMITTER_NAME=C", "GIT_COMMITTER_EMAIL=c@example.com")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// bareRepo makes a bare repository whose main holds one commit.
func bareRepo(t *testing.T) (dir, head string) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "r.git")
	git(t, "init", "-q", "--bare", dir)
	tree := git(t, "-C", dir, "hash-object", "-w", "-t", "tree", os.DevNull)
	head = git(t, "-C", dir, "commit-tree", tree, "-m", "one")
	git(t, "-C", dir, "update-ref", "refs/heads/main", head)
	git(t, "-C", dir, "symbolic-ref", "HEAD", "refs/heads/main")
	return dir, head
}

// startServe runs Serve on one end of a pipe and returns the other.
func startServe(t *testing.T, ctx context.Context, opts ServeOptions) (net.Conn, chan error) {
	t.Helper()
	client, server := net.Pipe()
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, server, opts) }()
	t.Cleanup(func() { client.Close() })
	return client, done
}

func waitServe(t *testing.T, done chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
		return nil
	}
}

func TestServeRefuses(t *testing.T) {
	dir, _ := bareRepo(t)
	request := func(r RequestFrame) []byte {
		var b bytes.Buffer
		if err := r.Encode(&b); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	tests := []struct {
		name  string
		opts  ServeOptions
		wire  []byte
		want  error
		wantM string
	}{
		{"unsupported service", ServeOptions{RepoDir: dir}, request(RequestFrame{Service: "git-upload-archive"}),
			ErrBadRequest, `bad request: unsupported service "git-upload-archive"`},
		{"control characters", ServeOptions{RepoDir: dir}, request(RequestFrame{Service: UploadPack, GitProtocol: "version=2\n"}),
			ErrBadRequest, "bad request: GIT_PROTOCOL holds control characters"},
		{"nothing served", ServeOptions{}, request(RequestFrame{Service: UploadPack}),
			ErrRepositoryNotFound, "repository not found: no repository is served here"},
		{"missing repository", ServeOptions{Resolve: func(_ context.Context, p string) (string, error) { return p, nil }},
			request(RequestFrame{Service: UploadPack, Path: "/no/such.git"}),
			ErrRepositoryNotFound, "repository not found: /no/such.git"},
		{"not a repository", ServeOptions{RepoDir: t.TempDir()}, request(RequestFrame{Service: UploadPack}),
			ErrRepositoryNotFound, "repository not found"},
		{"resolve refuses", ServeOptions{Resolve: func(context.Context, string) (string, error) {
			return "", fmt.Errorf("%w: unknown name", ErrRepositoryNotFound)
		}}, request(RequestFrame{Service: UploadPack, Path: "x"}),
			ErrRepositoryNotFound, "repository not found: unknown name"},
		{"authorize refuses", ServeOptions{RepoDir: dir, Authorize: func(_ context.Context, a Access) error {
			if a.Service == ReceivePack && a.Dir == dir {
				return errors.New("read-only peer")
			}
			return nil
		}}, request(RequestFrame{Service: ReceivePack}),
			ErrNotAuthorized, "not authorized: read-only peer"},
		{"data first", ServeOptions{RepoDir: dir}, []byte("D\x00\x00\x00\x00"),
			ErrBadRequest, "bad request: D frame before the request"},
		{"garbage", ServeOptions{RepoDir: dir}, []byte("GET / HTTP/1.1\r\n"),
			ErrFrame, "bad frame: unknown frame type 0x47"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, done := startServe(t, t.Context(), tt.opts)
			go client.Write(tt.wire)
			f, err := ReadFrame(client)
			if want := (ErrorFrame{Message: tt.wantM}); err != nil || f != want {
				t.Errorf("got %#v, %v; want %#v", f, err, want)
			}
			if err := waitServe(t, done); !errors.Is(err, tt.want) {
				t.Errorf("Serve = %v, want %v", err, tt.want)
			}
		})
	}
}

// session reads frames until EXIT, returning DATA, STDERR and the code.
func readSession(t *testing.T, r io.Reader) (stdout, stderr string, code int32) {
	t.Helper()
	var out, errb strings.Builder
	for {
		f, err := ReadFrame(r)
		if err != nil {
			t.Fatalf("after %q: %v", out.String(), err)
		}
		switch f := f.(type) {
		case DataFrame:
			out.Write(f.Data)
		case StderrFrame:
			errb.Write(f.Text)
		case ExitFrame:
			return out.String(), errb.String(), f.Code
		default:
			t.Fatalf("unexpected %#v", f)
		}
	}
}

func TestServeUploadPackV2(t *testing.T) {
	dir, head := bareRepo(t)
	var got Access
	client, done := startServe(t, t.Context(), ServeOptions{RepoDir: dir,
		Authorize: func(_ context.Context, a Access) error { got = a; return nil }})
	if err := (RequestFrame{Service: UploadPack, GitProtocol: "version=2"}).Encode(client); err != nil {
		t.Fatal(err)
	}
	if f, err := ReadFrame(client); err != nil || f != (ReadyFrame{}) {
		t.Fatalf("got %#v, %v; want READY", f, err)
	}
	if want := (Access{Service: UploadPack, GitProtocol: "version=2", Dir: dir}); got != want {
		t.Errorf("Authorize got %#v, want %#v", got, want)
	}
	go func() {
		(DataFrame{Data: []byte("0014command=ls-refs\n0000")}).Encode(client)
		(EOFFrame{}).Encode(client)
	}()
	stdout, stderr, code := readSession(t, client)
	if !strings.HasPrefix(stdout, "000eversion 2\n") {
		t.Errorf("not protocol v2: %q", stdout)
	}
	if !strings.Contains(stdout, head+" refs/heads/main\n") {
		t.Errorf("ls-refs: %q", stdout)
	}
	if code != 0 || stderr != "" {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	client.Close()
	if err := waitServe(t, done); err != nil {
		t.Errorf("Serve = %v", err)
	}
}

// The service's failure is reported, not Serve's: its stderr as STDERR,
// its status as EXIT.
func TestServeServiceFails(t *testing.T) {
	dir, _ := bareRepo(t)
	client, done := startServe(t, t.Context(), ServeOptions{RepoDir: dir})
	(RequestFrame{Service: UploadPack}).Encode(client)
	if f, err := ReadFrame(client); err != nil || f != (ReadyFrame{}) {
		t.Fatalf("got %#v, %v; want READY", f, err)
	}
	go (DataFrame{Data: []byte("0009hello")}).Encode(client)
	_, stderr, code := readSession(t, client)
	if code != 128 || !strings.Contains(stderr, "fatal: ") {
		t.Errorf("exit %d, stderr %q; want 128 and git's message", code, stderr)
	}
	client.Close()
	if err := waitServe(t, done); err != nil {
		t.Errorf("Serve = %v", err)
	}
}

// A stream that ends mid-push without an EOF frame kills receive-pack;
// the refs are untouched even though what was sent so far is a complete
// command list.
func TestServeKillsOnBrokenStream(t *testing.T) {
	dir, head := bareRepo(t)
	for _, tt := range []struct {
		name  string
		input string
	}{
		{"mid-commands", "0067" + head[:20]},
		{"after commands, before the pack", pkt(fmt.Sprintf("%s %s refs/heads/main\x00report-status", head, strings.Repeat("1", 40))) + "0000"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			client, done := startServe(t, t.Context(), ServeOptions{RepoDir: dir})
			(RequestFrame{Service: ReceivePack}).Encode(client)
			if f, err := ReadFrame(client); err != nil || f != (ReadyFrame{}) {
				t.Fatalf("got %#v, %v; want READY", f, err)
			}
			go io.Copy(io.Discard, client)
			(DataFrame{Data: []byte(tt.input)}).Encode(client)
			client.Close()
			err := waitServe(t, done)
			if !errors.Is(err, ErrStreamBroken) || !strings.Contains(err.Error(), "git-receive-pack ended early") {
				t.Errorf("Serve = %v, want the service ended for the broken stream", err)
			}
			if q, _ := filepath.Glob(filepath.Join(dir, "objects", "tmp_objdir-*")); len(q) > 0 {
				t.Errorf("quarantine left behind: %v", q)
			}
			if got := git(t, "-C", dir, "rev-parse", "main"); got != head {
				t.Errorf("main moved to %s", got)
			}
		})
	}
}

func pkt(s string) string { return fmt.Sprintf("%04x%s", len(s)+4, s) }

func TestServeCancel(t *testing.T) {
	dir, _ := bareRepo(t)
	ctx, cancel := context.WithCancel(t.Context())
	client, done := startServe(t, ctx, ServeOptions{RepoDir: dir})
	(RequestFrame{Service: ReceivePack}).Encode(client)
	if f, err := ReadFrame(client); err != nil || f != (ReadyFrame{}) {
		t.Fatalf("got %#v, %v; want READY", f, err)
	}
	go io.Copy(io.Discard, client)
	cancel()
	if err := waitServe(t, done); !errors.Is(err, context.Canceled) {
		t.Errorf("Serve = %v, want context.Canceled", err)
	}
}
