package control

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/protocol"
)

func TestPair(t *testing.T) {
	path := filepath.Join(t.TempDir(), "control.sock")
	srv, err := Listen(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	cancelled := make(chan struct{})
	srv.SetPair(func(ctx context.Context, m protocol.Message, reply func(protocol.Message) error) error {
		switch m := m.(type) {
		case protocol.Pair:
			if m.Name == "wait" { // until the client hangs up
				<-ctx.Done()
				close(cancelled)
				return ctx.Err()
			}
			if err := reply(protocol.PairCode{Code: "grd1-abc"}); err != nil {
				return err
			}
			return reply(protocol.Paired{Remote: "bob", URL: "th::bob"})
		case protocol.PairJoin:
			return errors.New("wrong pairing code")
		}
		return errors.New("unexpected")
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, func(context.Context, protocol.Message) error { return nil }) }()
	t.Cleanup(func() { cancel(); <-done; srv.Close() })

	var codes []string
	got, err := Pair(ctx, path, protocol.Pair{}, func(c protocol.PairCode) { codes = append(codes, c.Code) })
	if err != nil || got != (protocol.Paired{Remote: "bob", URL: "th::bob"}) || len(codes) != 1 || codes[0] != "grd1-abc" {
		t.Fatalf("Pair = %+v, %v; codes %q", got, err, codes)
	}
	_, err = Pair(ctx, path, protocol.PairJoin{Code: "grd1-x"}, nil)
	var re *RefusedError
	if !errors.As(err, &re) || re.Text != "pair: wrong pairing code" {
		t.Fatalf("PAIRJOIN refused: %v", err)
	}
	// Hanging up cancels the daemon's side.
	hang, stop := context.WithTimeout(ctx, 200*time.Millisecond)
	defer stop()
	if _, err := Pair(hang, path, protocol.Pair{Name: "wait"}, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("hung up: %v", err)
	}
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the handler was not cancelled when the client hung up")
	}
}

func FuzzParsePairReply(f *testing.F) {
	for _, s := range []string{"PAIRCODE grd1-abc", "PAIRED bob th::x", "ERROR * pair: x", "OK", "", "PAIRED bob"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		m, err := parsePairReply(line)
		if err == nil {
			switch m.(type) {
			case protocol.PairCode, protocol.Paired:
			default:
				t.Fatalf("%q gave %T", line, m)
			}
		}
	})
}
