package cmdline

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/protocol"
)

func TestClosest(t *testing.T) {
	names := []string{"status", "stop", "pause", "resume", "reload", "push", "address", "notify-changes"}
	for word, want := range map[string]string{
		"stauts": "status", "staus": "status", "STATUS": "status", "sotp": "stop", "paus": "pause",
		"resum": "resume", "relaod": "reload", "pus": "push", "adress": "address", "notify": "notify-changes",
		"frobnicate": "", "x": "", "": "",
	} {
		if got := closest(word, names); got != want {
			t.Errorf("closest(%q) = %q, want %q", word, got, want)
		}
	}
}

// TestUnknownCommand: a word that names no command is an error (exit 2)
// naming the commands, and starts nothing.
func TestUnknownCommand(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := Daemon([]string{"git-remote-daemon", "-C", t.TempDir(), "stauts"}, strings.NewReader(""), &stdout, &stderr)
	if code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	want := "git-remote-daemon: \"stauts\" is not a command; did you mean status?\n" +
		"commands: status, stop, pause, resume, reload, push, address, notify-changes, pair (without one: start the daemon; see --help)\n"
	if stderr.String() != want || stdout.Len() != 0 {
		t.Errorf("stdout %q\nstderr %q\nwant stderr %q", stdout.String(), stderr.String(), want)
	}
}

// TestFindRepoMessages: no dangling colon, no git plumbing in the words.
func TestFindRepoMessages(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, c := range []struct{ dir, want string }{
		{"/nonexistent", "cannot use directory /nonexistent: no such file or directory"},
		{dir, "not in a git repository: " + dir + " (nor any of its parents); run it inside one, or give -C DIR"},
	} {
		_, err := findRepo(ctx, c.dir)
		if err == nil || err.Error() != c.want {
			t.Errorf("findRepo(%s) = %v, want %q", c.dir, err, c.want)
		}
	}
}

// TestCommandMux: commands from every source reach the one channel in
// order, a command handed over has been taken, and the end of stdin
// ends the channel and refuses what comes after.
func TestCommandMux(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	x := newCommandMux()
	stdin := make(chan protocol.Message)
	go x.run(ctx, stdin)
	got := make(chan string, 10)
	go func() {
		for m := range x.out {
			got <- m.String()
		}
		close(got)
	}()
	stdin <- protocol.Pause{}
	if err := x.send(ctx, protocol.Push{Remote: "origin"}); err != nil {
		t.Fatal(err)
	}
	stdin <- protocol.Resume{}
	close(stdin)
	var all []string
	for s := range got {
		all = append(all, s)
	}
	if s := strings.Join(all, "|"); s != "PAUSE|PUSH origin|RESUME" {
		t.Errorf("forwarded %q", s)
	}
	sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
	defer scancel()
	if err := x.send(sctx, protocol.Reload{}); err != errStopping {
		t.Errorf("send after the end: %v, want errStopping", err)
	}
}
