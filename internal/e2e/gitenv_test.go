package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// isolatedEnv is the environment of git (and our binaries) for a person
// whose home is home: nothing from the user running the tests, a fixed
// identity, no prompts; extra is appended.
func isolatedEnv(home string, extra ...string) []string {
	env := []string{"HOME=" + home, "XDG_CONFIG_HOME=" + filepath.Join(home, ".config"), "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.org", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.org",
		"GIT_TERMINAL_PROMPT=0", "PATH=" + os.Getenv("PATH")}
	return append(env, extra...)
}

// runCmd runs name in dir with env and returns its trimmed output; a
// failure fails tb.
func runCmd(tb testing.TB, env []string, dir, name string, args ...string) string {
	tb.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Env = dir, env
	out, err := cmd.CombinedOutput()
	if err != nil {
		tb.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// reportLatency reports the median and p99 of ds in milliseconds as
// ms-median-<what> and ms-p99-<what>, and returns them.
func reportLatency(b *testing.B, what string, ds []time.Duration) [2]float64 {
	if len(ds) == 0 {
		b.Fatalf("%s: no samples", what)
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	v := [2]float64{ms(s[len(s)/2]), ms(s[min(len(s)-1, len(s)*99/100)])}
	b.ReportMetric(v[0], "ms-median-"+what)
	b.ReportMetric(v[1], "ms-p99-"+what)
	return v
}

// firstLine returns the first line of out that starts with prefix, such
// as the URL in what `git-remote-daemon address` printed along with its
// notes on stderr.
func firstLine(tb testing.TB, out, prefix string) string {
	tb.Helper()
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix) {
			return strings.TrimSpace(l)
		}
	}
	tb.Fatalf("no %s line in %q", prefix, out)
	return ""
}
