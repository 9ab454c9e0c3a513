package control

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/git-remote-daemon/git-remote-daemon/protocol"
)

// The live status is answered once the daemon set it; before, the query
// is refused with a reason.
func TestQueryStatus(t *testing.T) {
	path := filepath.Join(t.TempDir(), "control.sock")
	srv, err := Listen(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, func(context.Context, protocol.Message) error { return nil }) }()
	defer func() { cancel(); <-done; srv.Close() }()
	var refused *RefusedError
	if _, err := QueryStatus(ctx, path); !errors.As(err, &refused) {
		t.Fatalf("query before the status is set: %v", err)
	}
	srv.SetStatus(func() ([]byte, error) { return []byte(`{"pid":1,"remotes":[]}`), nil })
	data, err := QueryStatus(ctx, path)
	if err != nil || string(data) != `{"pid":1,"remotes":[]}` {
		t.Fatalf("QueryStatus = %q, %v", data, err)
	}
	srv.SetStatus(func() ([]byte, error) { return []byte("{\n}"), nil })
	if _, err := QueryStatus(ctx, path); !errors.As(err, &refused) {
		t.Fatalf("a status of two lines was answered: %v", err)
	}
}
