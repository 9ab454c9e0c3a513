package notify

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/watch"
)

const sha = "0123456789abcdef0123456789abcdef01234567"

func TestRoundTrip(t *testing.T) {
	for _, m := range []Msg{
		{Kind: Ping}, {Kind: Pong},
		{Kind: Watch, ID: "w1", Path: "/srv/my repo.git"},
		{Kind: Watch, ID: "0", Path: "~/x"},
		{Kind: Unwatch, ID: "w1"}, {Kind: Ready, ID: "w1"}, {Kind: End, ID: "a.b-c_d"},
		{Kind: Ref, ID: "w1", SHA: sha, Ref: "refs/heads/main"},
		{Kind: Change, ID: "w1", SHA: sha, Ref: "refs/tags/v1.0"},
		{Kind: Delete, ID: "w1", Ref: "refs/heads/a/b"},
		{Kind: Error, ID: "w1", Text: "not a git repository"},
		{Kind: Error, ID: "*", Text: "x"},
	} {
		got, err := Parse(m.String())
		if err != nil || !reflect.DeepEqual(got, m) {
			t.Errorf("Parse(%q) = %+v, %v", m.String(), got, err)
		}
	}
	for _, line := range []string{"", "PING x", "PONG ", "WATCH w1", "WATCH w1 ", "WATCH * /x", "REF w1 xyz refs/heads/a",
		"REF w1 " + sha, "REF w1 " + sha + " main", "CHANGE w1 " + sha + " refs/a b", "DELETE w1", "END", "END w 1",
		"READY " + strings.Repeat("a", 65), "HELLO", "ERROR w1 a\x00b"} {
		if m, err := Parse(line); err == nil {
			t.Errorf("Parse(%q) = %+v, want an error", line, m)
		} else if !errors.Is(err, ErrMalformed) {
			t.Errorf("Parse(%q): %v does not wrap ErrMalformed", line, err)
		}
	}
	if v, ok := ParseBanner(Banner); !ok || v != Version {
		t.Errorf("ParseBanner(%q) = %d, %v", Banner, v, ok)
	}
}

func FuzzParse(f *testing.F) {
	f.Add("REF w1 " + sha + " refs/heads/main")
	f.Add("WATCH 0 /srv/x y")
	f.Add("ERROR * bad")
	f.Fuzz(func(t *testing.T, line string) {
		m, err := Parse(line)
		if err != nil {
			return
		}
		if s := m.String(); s != line {
			t.Fatalf("Parse(%q).String() = %q", line, s)
		}
	})
}

// FuzzClient feeds arbitrary server output to a client: it must end
// cleanly (no panic, no hang) whatever it gets.
func FuzzClient(f *testing.F) {
	f.Add(Banner + "\nREF 1 " + sha + " refs/heads/a\nREADY 1\nCHANGE 1 " + sha + " refs/heads/b\nEND 1\n")
	f.Add("noise\n" + Banner + "\nREADY 1\nDELETE 1 refs/heads/x\nEND 1\nERROR 1 gone\n")
	f.Add(Banner + "\nEND 1\n")
	f.Fuzz(func(t *testing.T, in string) {
		c, err := NewClient(context.Background(), strings.NewReader(in), io.Discard)
		if err != nil {
			return
		}
		s, err := c.Watch("1", "/x")
		if err != nil {
			return
		}
		for range s.Events() {
		}
		<-c.Done()
		if c.Err() == nil {
			t.Fatal("stream ended without an error")
		}
	})
}

func git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir, "GIT_CONFIG_NOSYSTEM=1", "GIT_AUTHOR_NAME=t",
		"GIT_AUTHOR_EMAIL=t@example.org", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.org")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// pipeServer runs Serve on pipes and returns a client of it.
func pipeServer(t *testing.T, opts ServerOptions, noise string) (*Client, chan error) {
	t.Helper()
	cr, sw := io.Pipe()
	sr, cw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		if noise != "" {
			_, _ = io.WriteString(sw, noise)
		}
		served <- Serve(ctx, sr, sw, opts)
		sw.Close()
	}()
	t.Cleanup(func() { cancel(); cw.Close() })
	c, err := NewClient(context.Background(), cr, cw)
	if err != nil {
		t.Fatal(err)
	}
	return c, served
}

func next(t *testing.T, s *Sub) Event {
	t.Helper()
	select {
	case e, ok := <-s.Events():
		if !ok {
			t.Fatal("events closed")
		}
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
	}
	return Event{}
}

func TestClientServer(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.git"), filepath.Join(dir, "b.git")
	git(t, dir, "init", "-q", "--bare", a)
	git(t, dir, "init", "-q", "--bare", b)
	tree := git(t, dir, "--git-dir="+a, "hash-object", "-t", "tree", "-w", "/dev/null")
	c1 := git(t, dir, "--git-dir="+a, "commit-tree", tree, "-m", "one")
	git(t, dir, "--git-dir="+a, "update-ref", "refs/heads/main", c1)

	hub, err := watch.NewHub(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	c, _ := pipeServer(t, ServerOptions{Hub: hub}, "Welcome to the machine\nlast login: never\n")

	sa, err := c.Watch("a", a)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := c.Watch("b", strings.TrimSuffix(b, ".git")) // found as git finds it
	if err != nil {
		t.Fatal(err)
	}
	if e := next(t, sa); e.Err != nil || !e.Refs.Equal(watch.Refs{"refs/heads/main": c1}) || !e.First || e.Changes != nil {
		t.Fatalf("a ready: %+v", e)
	}
	if e := next(t, sb); e.Err != nil || len(e.Refs) != 0 {
		t.Fatalf("b ready: %+v", e)
	}
	// An atomic two-ref update arrives as one batch.
	cmd := exec.Command("git", "--git-dir="+a, "update-ref", "--stdin")
	cmd.Stdin = strings.NewReader("start\ncreate refs/heads/x/y " + c1 + "\ndelete refs/heads/main\ncommit\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	e := next(t, sa)
	want := []watch.Change{{Ref: "refs/heads/main", Old: c1}, {Ref: "refs/heads/x/y", New: c1}}
	if e.Err != nil || !reflect.DeepEqual(e.Changes, want) {
		t.Fatalf("a changes: %+v", e)
	}
	// A missing repository and a deleted one end their watch with an error.
	sm, err := c.Watch("m", filepath.Join(dir, "missing"))
	if err != nil {
		t.Fatal(err)
	}
	if e := next(t, sm); e.Err == nil || !strings.Contains(e.Err.Error(), "not a git repository") {
		t.Fatalf("missing: %+v", e)
	}
	if err := os.RemoveAll(b); err != nil {
		t.Fatal(err)
	}
	// "gone", or git's "not a git repository" when the listing raced
	// with the removal (watch classifies only a missing directory or HEAD
	// as gone).
	if e := next(t, sb); e.Err == nil || !strings.Contains(e.Err.Error(), "gone") && !strings.Contains(e.Err.Error(), "not a git repository") {
		t.Fatalf("deleted: %+v", e)
	}
	// Pings are answered; the client stays alive.
	before := c.LastReceived()
	time.Sleep(2 * time.Millisecond)
	if err := c.Ping(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !c.LastReceived().After(before) {
		if time.Now().After(deadline) {
			t.Fatal("no PONG")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestServerTimesOutASilentClient(t *testing.T) {
	_, served := pipeServer(t, ServerOptions{Timeout: 200 * time.Millisecond}, "")
	select {
	case err := <-served:
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("Serve = %v, want ErrTimeout", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("server kept running without heartbeats")
	}
}

func TestServerEndsOnEOF(t *testing.T) {
	sr, sw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- Serve(context.Background(), strings.NewReader("PING\n"), sw, ServerOptions{})
		sw.Close()
	}()
	out, _ := io.ReadAll(sr)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if string(out) != Banner+"\nPONG\n" {
		t.Errorf("output %q", out)
	}
}

func TestServerAnswersGarbage(t *testing.T) {
	var out strings.Builder
	in := "HELLO\nREADY 1\nPING\n"
	if err := Serve(context.Background(), strings.NewReader(in), &out, ServerOptions{}); err != nil {
		t.Fatal(err)
	}
	want := Banner + "\nERROR * malformed notify line: unknown verb \"HELLO\"\nERROR * READY is sent by the server, not to it\nPONG\n"
	if out.String() != want {
		t.Errorf("output:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestClientRefusesNoBanner(t *testing.T) {
	_, err := NewClient(context.Background(), strings.NewReader("bash: git-remote-daemon: command not found\n"), io.Discard)
	if !errors.Is(err, ErrNoBanner) || !strings.Contains(err.Error(), "command not found") {
		t.Fatalf("err = %v", err)
	}
	_, err = NewClient(context.Background(), strings.NewReader(BannerPrefix+"7\n"), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "version 7") {
		t.Fatalf("err = %v", err)
	}
}

func TestClientGarbledStreamFails(t *testing.T) {
	c, err := NewClient(context.Background(), strings.NewReader(Banner+"\nREADY 1\nCHANGE 1 zzz refs/heads/a\n"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if s, err := c.Watch("1", "/x"); err == nil {
		for range s.Events() {
		}
	}
	<-c.Done()
	if err := c.Err(); err == nil || !errors.Is(err, ErrMalformed) {
		t.Fatalf("err = %v", err)
	}
}
