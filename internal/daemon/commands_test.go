package daemon

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/protocol"
)

// ReadCommands delivers commands, answers bad lines with an ERROR, and
// closes its channel at the end of input.
func TestReadCommands(t *testing.T) {
	out := newRecorder()
	ch := ReadCommands(context.Background(), strings.NewReader("PAUSE\nNONSENSE\nPUSH origin\n"), out)
	var got []string
	for m := range ch {
		got = append(got, m.String())
	}
	if fmt.Sprint(got) != "[PAUSE PUSH origin]" {
		t.Fatalf("got %q", got)
	}
	out.exactly(t, 1, `ERROR \* line 2: .*`)
}

// Once its context ends, ReadCommands delivers nothing more and ends.
func TestReadCommandsEndsWithContext(t *testing.T) {
	r, w := io.Pipe()
	defer w.Close()
	ctx, cancel := context.WithCancel(context.Background())
	ch := ReadCommands(ctx, r, newRecorder())
	if _, err := io.WriteString(w, "PAUSE\n"); err != nil {
		t.Fatal(err)
	}
	if m := <-ch; m != (protocol.Pause{}) {
		t.Fatalf("got %v", m)
	}
	cancel()
	go io.WriteString(w, "RESUME\n") // the reader was waiting for it
	select {
	case m, ok := <-ch:
		if ok {
			t.Fatalf("delivered %v after the context ended", m)
		}
	case <-time.After(guard):
		t.Fatal("ReadCommands did not end with its context")
	}
}

// A reader blocked on a full channel ends with its context.
func TestReadCommandsFullChannel(t *testing.T) {
	r, w := io.Pipe()
	defer w.Close()
	ctx, cancel := context.WithCancel(context.Background())
	ch := ReadCommands(ctx, r, newRecorder())
	go io.WriteString(w, strings.Repeat("PAUSE\n", 200))
	deadline := time.After(guard)
	for len(ch) < cap(ch) {
		select {
		case <-deadline:
			t.Fatal("the channel never filled")
		case <-time.After(time.Millisecond):
		}
	}
	cancel()
	n := 0
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				if n > cap(ch)+1 {
					t.Fatalf("%d commands delivered after the context ended", n-cap(ch))
				}
				return
			}
			n++
		case <-deadline:
			t.Fatalf("ReadCommands did not end with its context (%d read)", n)
		}
	}
}
