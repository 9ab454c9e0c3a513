package protocol_test

import (
	"fmt"
	"os"
	"strings"

	"github.com/git-remote-daemon/git-remote-daemon/protocol"
)

// A program driving `git-remote-daemon --foreground` reads its stdout
// with a Reader, parses each line with Parse and writes commands to its
// stdin with a Writer. Here the daemon's output is canned and the
// commands go to os.Stdout.
func Example() {
	daemonOut := strings.NewReader("CONNECTED origin\n" +
		"CHANGED origin 0123456789abcdef0123456789abcdef01234567\n" +
		"ERROR backup permission denied\n")
	daemonIn := protocol.NewWriter(os.Stdout)
	r := protocol.NewReader(daemonOut)
	for {
		line, err := r.ReadLine()
		if err != nil {
			break // io.EOF: the daemon exited
		}
		m, err := protocol.Parse(line)
		if err != nil {
			continue // a malformed line: skip it
		}
		switch m := m.(type) {
		case protocol.Changed:
			fmt.Printf("%s changed: %d refs\n", m.Remote, len(m.SHAs))
			_ = daemonIn.Send(protocol.Push{Remote: "backup"})
		case protocol.Error:
			fmt.Printf("%s failed: %s\n", m.Remote, m.Text)
		}
	}
	_ = daemonIn.Send(protocol.Pause{})
	// Output:
	// origin changed: 1 refs
	// PUSH backup
	// backup failed: permission denied
	// PAUSE
}
