package e2e

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// The README's walkthroughs are run as a user runs them: every ```sh
// block right after a `<!-- readme-test: NAME -->` line of README.md is
// written, unchanged but for the rules below, to $WORK/readme/NAME.sh,
// and the scripts in testdata/readme/*.txtar run those files with bash
// (`exec bash -eu $WORK/readme/NAME.sh`), each person in a HOME of their
// own, and check what the README promises. So a README block that no
// longer works (bash -eu: a command failing, a variable unset), no longer
// does what the README says, or disappears, fails the test. A new tagged
// block goes into readmeTags and into a script.
//
// What a user pastes between the steps comes from the outputs of the
// earlier blocks: the README names it as a shell variable (BOB_URL,
// ALICE_URL) that the script sets with `envfrom`. The only rewriting:
//
//   - th-alice: the port of `0.0.0.0:42424` becomes a free UDP port, so
//     that runs in parallel do not collide. Alice listens on 0.0.0.0 as
//     printed; of the URLs `address` prints, Bob takes the 127.0.0.1 one
//     (the network Alice and Bob share here is the loopback).
//
// The far side of ssh is an account on the test's sshd: `farhost` maps
// the host name of the README (`host`) to it in an ssh config, as a user's
// ~/.ssh/config does, and gives that account its own home and the
// binaries on its PATH (as "Installing on the far side of ssh" says).

// readmeTags are the tagged blocks the README must have.
var readmeTags = []string{
	"local-start", "local-control", "local-stop", // Quick start: a local remote
	"ssh",                                        // ssh remotes
	"th-bob-address", "th-alice", "th-bob-clone", // th:: remotes, Alice and Bob
}

// readmePortRule is the th-alice rewriting: the listen port.
var readmePortRule = regexp.MustCompile(`0\.0\.0\.0:42424\b`)

// readmeBlocks returns the tagged ```sh blocks of a markdown text, by
// tag. A tag must be followed at once by a ```sh fence, the block must
// be closed, and no tag may appear twice.
func readmeBlocks(text string) (map[string]string, error) {
	tagRe := regexp.MustCompile(`^<!--\s*readme-test:\s*(\S+)\s*-->\s*$`)
	blocks := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(text))
	n := 0
	next := func() (string, bool) {
		if !sc.Scan() {
			return "", false
		}
		n++
		return sc.Text(), true
	}
	for {
		line, ok := next()
		if !ok {
			break
		}
		m := tagRe.FindStringSubmatch(line)
		if m == nil {
			if strings.Contains(line, "readme-test") {
				return nil, fmt.Errorf("line %d: malformed readme-test tag %q", n, line)
			}
			continue
		}
		tag, at := m[1], n
		if _, dup := blocks[tag]; dup {
			return nil, fmt.Errorf("line %d: readme-test %s: tagged twice", at, tag)
		}
		if fence, ok := next(); !ok || strings.TrimSpace(fence) != "```sh" {
			return nil, fmt.Errorf("line %d: readme-test %s: not followed by a ```sh block", at, tag)
		}
		var b strings.Builder
		closed := false
		for {
			l, ok := next()
			if !ok {
				break
			}
			if strings.TrimSpace(l) == "```" {
				closed = true
				break
			}
			b.WriteString(l + "\n")
		}
		if !closed {
			return nil, fmt.Errorf("line %d: readme-test %s: block never closed", at, tag)
		}
		blocks[tag] = b.String()
	}
	return blocks, sc.Err()
}

func TestReadmeBlocksParse(t *testing.T) {
	t.Parallel()
	good := "text\n<!-- readme-test: a -->\n```sh\necho a\n\necho b\n```\n<!--readme-test: b-->\n```sh\n```\n"
	got, err := readmeBlocks(good)
	if err != nil {
		t.Fatal(err)
	}
	if got["a"] != "echo a\n\necho b\n" || got["b"] != "" || len(got) != 2 {
		t.Errorf("blocks %q", got)
	}
	for _, c := range []struct{ text, err string }{
		{"<!-- readme-test: a -->\n\n```sh\nx\n```\n", "not followed by a ```sh block"},
		{"<!-- readme-test: a -->\n```\nx\n```\n", "not followed by a ```sh block"},
		{"<!-- readme-test: a -->\n```sh\nx\n", "never closed"},
		{"<!-- readme-test: a -->\n```sh\n```\n<!-- readme-test: a -->\n```sh\n```\n", "tagged twice"},
		{"<!-- readme-test a -->\n```sh\n```\n", "malformed readme-test tag"},
	} {
		if _, err := readmeBlocks(c.text); err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%q: error %v, want %q", c.text, err, c.err)
		}
	}
}

// TestReadme runs the README's walkthroughs (testdata/readme/*.txtar).
func TestReadme(t *testing.T) {
	t.Parallel()
	text, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := readmeBlocks(string(text))
	if err != nil {
		t.Fatalf("README.md: %v", err)
	}
	var tags []string
	for tag := range blocks {
		tags = append(tags, tag)
	}
	slices.Sort(tags)
	want := slices.Sorted(slices.Values(readmeTags))
	if !slices.Equal(tags, want) {
		t.Fatalf("README.md has the tagged blocks %q, want %q", tags, want)
	}
	if n := len(readmePortRule.FindAllString(blocks["th-alice"], -1)); n != 1 {
		t.Fatalf("README.md th-alice block: %d times %q, want once (the port rule of readme_test.go)", n, readmePortRule)
	}
	// Every block is run by some script.
	scripts, err := filepath.Glob("testdata/readme/*.txtar")
	if err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	for _, s := range scripts {
		b, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		all.Write(b)
	}
	for _, tag := range readmeTags {
		if !strings.Contains(all.String(), "$WORK/readme/"+tag+".sh") {
			t.Errorf("no script in testdata/readme runs the README block %s", tag)
		}
	}
	testscript.Run(t, readmeParams("testdata/readme", blocks))
}

// readmeParams runs the scripts in dir with blocks as the README's.
func readmeParams(dir string, blocks map[string]string) testscript.Params {
	cmds := commands()
	cmds["envfrom"] = cmdEnvFrom
	cmds["farhost"] = cmdFarHost
	return testscript.Params{
		Dir: dir,
		Setup: func(env *testscript.Env) error {
			if err := setup(env); err != nil {
				return err
			}
			return writeReadmeBlocks(env.WorkDir, blocks)
		},
		Cmds:                cmds,
		RequireExplicitExec: true,
	}
}

// TestReadmeBrokenBlock: a README block that runs without error but no
// longer does what the README says fails its script. Here the Quick
// start's stop block stops nothing.
func TestReadmeBrokenBlock(t *testing.T) {
	t.Parallel()
	text, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := readmeBlocks(string(text))
	if err != nil {
		t.Fatalf("README.md: %v", err)
	}
	if !strings.Contains(blocks["local-stop"], "git-remote-daemon stop") {
		t.Fatalf("README.md local-stop block %q: no `git-remote-daemon stop` to break", blocks["local-stop"])
	}
	blocks["local-stop"] = strings.ReplaceAll(blocks["local-stop"], "git-remote-daemon stop", "git-remote-daemon status")
	dir := t.TempDir()
	script, err := os.ReadFile("testdata/readme/local.txtar")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "local.txtar"), script, 0o644); err != nil {
		t.Fatal(err)
	}
	r := &recordT{TB: t}
	testscript.RunT(r, readmeParams(dir, blocks))
	if !r.Failed() {
		t.Fatalf("local.txtar passed with a stop block that stops nothing:\n%s", r.log.String())
	}
	// It fails at the broken block, not before.
	log := r.log.String()
	run := strings.Index(log, "> exec bash -eu $WORK/readme/local-stop.sh")
	if run < 0 || !strings.Contains(log[run:], "FAIL: ") {
		t.Errorf("not failed after the stop block:\n%s", log)
	}
}

// writeReadmeBlocks writes each block to dir/readme/TAG.sh, with the
// rewriting rules applied.
func writeReadmeBlocks(dir string, blocks map[string]string) error {
	c, err := net.ListenPacket("udp4", "0.0.0.0:0")
	if err != nil {
		return err
	}
	port := c.LocalAddr().(*net.UDPAddr).Port
	if err := c.Close(); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dir, "readme"), 0o755); err != nil {
		return err
	}
	for tag, text := range blocks {
		if tag == "th-alice" {
			text = readmePortRule.ReplaceAllString(text, "0.0.0.0:"+strconv.Itoa(port))
		}
		if err := os.WriteFile(filepath.Join(dir, "readme", tag+".sh"), []byte(text), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// cmdEnvFrom sets VAR to the one line of FILE (or stdout) that matches
// REGEXP, as a user copies it from a terminal: envfrom VAR FILE REGEXP
func cmdEnvFrom(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: envfrom VAR FILE|stdout REGEXP")
	}
	re, err := regexp.Compile(args[2])
	ts.Check(err)
	var found []string
	for _, l := range strings.Split(ts.ReadFile(args[1]), "\n") {
		if re.MatchString(l) {
			found = append(found, l)
		}
	}
	if len(found) != 1 {
		ts.Fatalf("envfrom %s: %d lines of %s match %q, want 1: %q", args[0], len(found), args[1], args[2], found)
	}
	ts.Setenv(args[0], found[0])
	ts.Logf("%s=%s", args[0], found[0])
}

// cmdFarHost makes NAME an ssh host of its own: farhost NAME HOMEDIR.
// After `sshd start`, it writes $HOME/.ssh/config with a Host NAME entry
// for the test's sshd (and sshtest's client settings), points
// GIT_SSH_COMMAND at it (ssh takes ~ from the passwd entry, not $HOME,
// so a user's ~/.ssh/config is named here), and gives the login the
// account of a far host: HOMEDIR as its home and working directory, and
// the binaries on its PATH (sshd's authorized_keys forced command sets
// them, then runs the command asked for).
func cmdFarHost(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: farhost NAME HOMEDIR (after sshd start)")
	}
	name, far := args[0], ts.MkAbs(args[1])
	sshdDir := ts.Getenv("SSHD_DIR")
	if sshdDir == "" {
		ts.Fatalf("farhost: run `sshd start` first")
	}
	ts.Check(os.MkdirAll(far, 0o755))
	base, err := os.ReadFile(filepath.Join(sshdDir, sshConfigFile))
	ts.Check(err)
	cfg := fmt.Sprintf("Host %s\n\tHostName 127.0.0.1\n\tPort %s\n\tUser %s\n\n%s",
		name, ts.Getenv("SSHD_PORT"), ts.Getenv("SSHD_USER"), base)
	sshDir := filepath.Join(ts.Getenv("HOME"), ".ssh")
	ts.Check(os.MkdirAll(sshDir, 0o700))
	config := filepath.Join(sshDir, "config")
	ts.Check(os.WriteFile(config, []byte(cfg), 0o600))
	ts.Setenv("GIT_SSH_COMMAND", "ssh -F '"+config+"'")

	bin := filepath.Dir(ts.Getenv("GRD"))
	keys := filepath.Join(sshdDir, "authorized_keys")
	key, err := os.ReadFile(keys)
	ts.Check(err)
	if strings.ContainsAny(far+bin, `"'\$`+"`") {
		ts.Fatalf("farhost: %s or %s holds a quote, $ or backslash", far, bin)
	}
	forced := fmt.Sprintf(`command="HOME='%s'; cd; PATH='%s':$PATH; eval \"$SSH_ORIGINAL_COMMAND\"" `, far, bin)
	ts.Check(os.WriteFile(keys, []byte(forced+strings.TrimSpace(string(key))+"\n"), 0o600))
}

// sshConfigFile is the client config sshtest writes in SSHD_DIR.
const sshConfigFile = "ssh_config"
