package daemon

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/git-remote-daemon/git-remote-daemon/internal/transport"
	"github.com/git-remote-daemon/git-remote-daemon/internal/transport/poll"
)

// TestSecretsMasked: a remote whose URL holds a token and a password,
// polled with real git that fails to reach it: neither its ERROR line,
// nor the log, nor the status file (the user's only) holds them.
func TestSecretsMasked(t *testing.T) {
	const token, password = "T0KEN5ECRET", "PASSW0RD5ECRET"
	url := "http://me:" + password + "@127.0.0.1:1/r.git?ref=main&access_token=" + token
	statusFile := filepath.Join(t.TempDir(), "status.json")
	var logs syncBuffer
	h := newHarnessWith(t, func(o *Options) {
		o.Transports = transport.Registry{transport.Other: poll.Dialer{}}
		o.StatusFile = statusFile
		o.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}, "remote.up.url "+url, "remote.up.fetch +refs/heads/*:refs/remotes/up/*")

	h.out.await(t, 1, "ERROR up .*")
	h.clock.nextWait(t) // the failure is logged before the retry waits

	errLine := h.out.all()[0]
	if !strings.Contains(errLine, "access_token=xxxxx") {
		t.Errorf("the ERROR line lost the URL (or git changed its message): %s", errLine)
	}
	log := logs.String()
	if !strings.Contains(log, "access_token=xxxxx") {
		t.Errorf("the log has no masked URL:\n%s", log)
	}
	rep := awaitReport(t, statusFile, func(r Report) bool { return len(r.Remotes) == 1 && r.Remotes[0].LastError != "" })
	data, err := os.ReadFile(statusFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Remotes) != 1 || rep.Remotes[0].URL != "http://me:xxxxx@127.0.0.1:1/r.git?ref=main&access_token=xxxxx" ||
		!strings.Contains(rep.Remotes[0].LastError, "access_token=xxxxx") {
		t.Errorf("the status file has no masked URL:\n%s", data)
	}
	for what, text := range map[string]string{"ERROR line": strings.Join(h.out.all(), "\n"), "log": log, "status file": string(data)} {
		if strings.Contains(text, token) || strings.Contains(text, password) {
			t.Errorf("the %s holds a secret:\n%s", what, text)
		}
	}
	fi, err := os.Stat(statusFile)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("the status file has mode %#o, want 0600", perm)
	}
}

// syncBuffer is a bytes.Buffer safe for a logger and a test to share.
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
