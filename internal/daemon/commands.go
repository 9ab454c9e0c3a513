package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/git-remote-daemon/git-remote-daemon/protocol"
)

// ReadCommands reads protocol lines from r and sends the commands on the
// returned channel, which is closed at the end of input or once ctx ends.
// A malformed or unknown line is answered with an ERROR and reading goes
// on. After ctx ends nothing more is delivered and the reader never waits
// for the channel; a read already waiting on r ends with r's next line or
// its end (stdin cannot be interrupted), and the goroutine with it.
func ReadCommands(ctx context.Context, r io.Reader, out Emitter) <-chan protocol.Message {
	ch := make(chan protocol.Message, 64)
	go func() {
		defer close(ch)
		pr := protocol.NewReader(r)
		for ctx.Err() == nil {
			line, err := pr.ReadLine()
			if ctx.Err() != nil || errors.Is(err, io.EOF) {
				return
			}
			if errors.Is(err, protocol.ErrLineTooLong) {
				out.Emit(protocol.Error{Remote: protocol.Daemon, Text: err.Error()})
				continue
			}
			if err != nil {
				return // stdin is broken: as good as closed
			}
			m, err := protocol.ParseCommand(line)
			if err != nil {
				out.Emit(protocol.Error{Remote: protocol.Daemon, Text: fmt.Sprintf("line %d: %v", pr.Line(), err)})
				continue
			}
			select {
			case ch <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch
}
