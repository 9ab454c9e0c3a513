package e2e

import (
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/git-remote-daemon/git-remote-daemon/internal/pairing"
)

// cmdPairCode handles pairing codes in scripts:
//
//	paircode [-n NAME] save VAR    wait for the daemon's PAIRCODE line, set VAR to its code
//	paircode wait FILE VAR         wait until FILE (a background pair invite's output) holds a code, set VAR to it
//	paircode wrong CODE VAR        set VAR to CODE with one bit of its secret flipped (a well-formed code)
func cmdPairCode(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("paircode cannot be negated")
	}
	name := ""
	if len(args) > 1 && args[0] == "-n" {
		name, args = args[1], args[2:]
	}
	switch {
	case len(args) == 2 && args[0] == "save":
		d := daemonsOf(ts).get(name)
		if d == nil {
			ts.Fatalf("paircode: no daemon %q started", name)
		}
		line, found := d.await(regexp.MustCompile(`^PAIRCODE \S+$`), waitLimit)
		if !found {
			ts.Fatalf("no PAIRCODE line within %s; output so far:\n%s", waitLimit, d.output())
		}
		ts.Setenv(args[1], strings.TrimPrefix(line, "PAIRCODE "))
	case len(args) == 3 && args[0] == "wait":
		deadline := time.Now().Add(codeWait)
		for {
			data, _ := os.ReadFile(ts.MkAbs(args[1]))
			if code := codeRE.Find(data); code != nil {
				ts.Setenv(args[2], string(code))
				return
			}
			if time.Now().After(deadline) {
				ts.Fatalf("no pairing code in %s after %s: %q", args[1], codeWait, data)
			}
			time.Sleep(20 * time.Millisecond)
		}
	case len(args) == 3 && args[0] == "wrong":
		code, err := pairing.ParseCode(args[1])
		ts.Check(err)
		code.Secret[0] ^= 1
		ts.Setenv(args[2], code.String())
	default:
		ts.Fatalf("usage: paircode [-n NAME] save VAR | paircode wait FILE VAR | paircode wrong CODE VAR")
	}
}

// codeWait bounds the wait for a background `pair invite` to print its code.
var codeWait = 30 * time.Second

var codeRE = regexp.MustCompile(`grd1-[a-z2-7]+`)
