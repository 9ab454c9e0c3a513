package e2e

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestDemoPlainWhenPiped: scripts/demo writes its headings without
// terminal escapes when its output is a file or a pipe (a log, a CI job),
// as the demo's own heading function is run here, output captured.
func TestDemoPlainWhenPiped(t *testing.T) {
	t.Parallel()
	demo, err := os.ReadFile("../../scripts/demo")
	if err != nil {
		t.Fatal(err)
	}
	var say []string
	in := false
	for _, line := range strings.Split(string(demo), "\n") {
		if strings.HasPrefix(line, "say()") || strings.HasPrefix(line, "# Headings") {
			in = true
		}
		if in {
			say = append(say, line)
		}
		if in && (strings.HasPrefix(line, "fi") || strings.HasPrefix(line, "say()")) {
			break
		}
	}
	if len(say) == 0 {
		t.Fatal("scripts/demo has no say function")
	}
	cmd := exec.Command("bash", "-c", strings.Join(say, "\n")+"\nsay 'A heading'")
	cmd.Env = append(os.Environ(), "TERM=xterm")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != "\nA heading\n" {
		t.Errorf("piped heading %q, want %q", out, "\nA heading\n")
	}
}
