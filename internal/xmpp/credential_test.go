package xmpp

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// gitEnv is an isolated environment for git with HOME in a temp dir.
func gitEnv(t *testing.T) ([]string, string) {
	home := t.TempDir()
	env := []string{"HOME=" + home, "GIT_CONFIG_NOSYSTEM=1", "PATH=" + os.Getenv("PATH"), "XDG_CONFIG_HOME=" + filepath.Join(home, ".config")}
	return env, home
}

func git(t *testing.T, env []string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

func TestGitCredentialStore(t *testing.T) {
	env, home := gitEnv(t)
	g := GitCredential{Env: env}
	ctx := context.Background()
	// No helper: a clear error, and no prompt.
	if _, err := g.Fill(ctx, "alice", "example.org"); !errors.Is(err, ErrNoPassword) {
		t.Fatalf("no helper: %v", err)
	}
	git(t, env, "config", "--global", "credential.helper", "store")
	if err := g.Approve(ctx, "alice", "example.org", "s3cret=x"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(home, ".git-credentials"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "xmpp://alice:s3cret%3dx@example.org") {
		t.Fatalf("store file: %q", b)
	}
	pw, err := g.Fill(ctx, "alice", "example.org")
	if err != nil || pw != "s3cret=x" {
		t.Fatalf("fill: %q %v", pw, err)
	}
	if _, err := g.Fill(ctx, "bob", "example.org"); !errors.Is(err, ErrNoPassword) {
		t.Fatalf("other user: %v", err)
	}
	if err := g.Reject(ctx, "alice", "example.org", "s3cret=x"); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Fill(ctx, "alice", "example.org"); !errors.Is(err, ErrNoPassword) {
		t.Fatalf("after reject: %v", err)
	}
}

// TestIntegrationGitCredentialLogin logs in with the password from a
// real credential store, never from config.
func TestIntegrationGitCredentialLogin(t *testing.T) {
	srv := startServer(t)
	env, home := gitEnv(t)
	git(t, env, "config", "--global", "credential.helper", "store")
	if err := os.WriteFile(filepath.Join(home, ".git-credentials"), []byte("xmpp://alice:pw-alice@localhost\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config(srv, "alice", 0)
	cfg.Password = ""
	cfg.PasswordFunc = GitCredential{Env: env}.Fill
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	// bob has no stored password: Dial says so.
	cfg = config(srv, "bob", 1)
	cfg.Password = ""
	cfg.PasswordFunc = GitCredential{Env: env}.Fill
	if _, err := Dial(ctx, cfg); !errors.Is(err, ErrNoPassword) {
		t.Fatalf("bob: %v", err)
	}
}

func TestCredentialRoundTrip(t *testing.T) {
	for _, c := range []Credential{
		{Protocol: "xmpp", Host: "example.org", Username: "alice", Password: "pw"},
		{Protocol: "xmpp", Host: "example.org"},
		{Password: "with = and spaces "},
	} {
		b, err := c.Encode()
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseCredential(b)
		if err != nil || got != c {
			t.Fatalf("round trip %+v: %+v %v (%q)", c, got, err, b)
		}
	}
	if _, err := (Credential{Password: "a\nb"}).Encode(); err == nil {
		t.Fatal("newline in a value accepted")
	}
	got, err := ParseCredential([]byte("protocol=xmpp\r\nquit=1\npassword=x\n\npassword=y\n"))
	if err != nil || got.Password != "x" || got.Protocol != "xmpp" {
		t.Fatalf("parse: %+v %v", got, err)
	}
	if _, err := ParseCredential([]byte("garbage\n")); err == nil {
		t.Fatal("line without '=' accepted")
	}
}

func FuzzParseCredential(f *testing.F) {
	f.Add([]byte("protocol=xmpp\nhost=example.org\nusername=alice\npassword=pw\n\n"))
	f.Add([]byte("password=\n"))
	f.Add([]byte("x"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCredential(b)
		if err != nil {
			return
		}
		enc, err := c.Encode()
		if err != nil {
			return
		}
		c2, err := ParseCredential(enc)
		if err != nil || c2 != c {
			t.Fatalf("re-parse of %q: %+v, want %+v (%v)", enc, c2, c, err)
		}
	})
}
