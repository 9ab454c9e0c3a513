package notify

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/watch"
)

// repoWith makes a bare repository holding refs/heads/<branch>.
func repoWith(t *testing.T, dir, name, branch string) (path, commit string) {
	t.Helper()
	path = filepath.Join(dir, name)
	git(t, dir, "init", "-q", "--bare", path)
	tree := git(t, dir, "--git-dir="+path, "hash-object", "-t", "tree", "-w", "/dev/null")
	commit = git(t, dir, "--git-dir="+path, "commit-tree", tree, "-m", name)
	git(t, dir, "--git-dir="+path, "update-ref", "refs/heads/"+branch, commit)
	return path, commit
}

// gate is a writer that can be shut: writes then wait until it opens.
type gate struct {
	w       io.Writer
	mu      sync.Mutex
	open    chan struct{} // closed while the gate is open
	blocked chan struct{} // signalled when a write waits
}

func newGate(w io.Writer) *gate {
	g := &gate{w: w, open: make(chan struct{}), blocked: make(chan struct{}, 1)}
	close(g.open)
	return g
}

func (g *gate) shut() { g.mu.Lock(); g.open = make(chan struct{}); g.mu.Unlock() }
func (g *gate) release() {
	g.mu.Lock()
	close(g.open)
	g.mu.Unlock()
}

func (g *gate) Write(p []byte) (int, error) {
	g.mu.Lock()
	open := g.open
	g.mu.Unlock()
	select {
	case <-open:
	default:
		select {
		case g.blocked <- struct{}{}:
		default:
		}
		<-open
	}
	return g.w.Write(p)
}

func readLineWithin(t *testing.T, lines <-chan string) string {
	t.Helper()
	select {
	case l, ok := <-lines:
		if !ok {
			t.Fatal("server output ended")
		}
		return l
	case <-time.After(10 * time.Second):
		t.Fatal("no line from the server within 10s")
	}
	return ""
}

func linesOf(r io.Reader) <-chan string {
	ch := make(chan string, 64)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			ch <- sc.Text()
		}
	}()
	return ch
}

// An id unwatched and watched again at once, while the old watch is
// still writing: its lines end with its ERROR, and only then come the
// new watch's.
func TestServerReusedIDStartsClean(t *testing.T) {
	dir := t.TempDir()
	a, ca := repoWith(t, dir, "a.git", "a")
	b, cb := repoWith(t, dir, "b.git", "b")
	sr, cw := io.Pipe()
	cr, sw := io.Pipe()
	g := newGate(sw)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = Serve(ctx, sr, g, ServerOptions{}); sw.Close() }()
	defer cw.Close()
	lines := linesOf(cr)
	if l := readLineWithin(t, lines); l != Banner {
		t.Fatalf("banner %q", l)
	}
	g.shut()
	if _, err := io.WriteString(cw, "WATCH w1 "+a+"\n"); err != nil {
		t.Fatal(err)
	}
	<-g.blocked // the old watch is writing its refs
	if _, err := io.WriteString(cw, "UNWATCH w1\n"); err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = io.WriteString(cw, "WATCH w1 "+b+"\n") }()
	g.release()
	want := []string{"REF w1 " + ca + " refs/heads/a", "READY w1", "ERROR w1 unwatched", "REF w1 " + cb + " refs/heads/b", "READY w1"}
	var got []string
	for readies := 0; readies < 2; {
		l := readLineWithin(t, lines)
		if l == "READY w1" {
			readies++
		}
		got = append(got, l)
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// The client side of the same: the new watch's first event has the new
// repository's refs, whatever of the old watch was still in flight.
func TestClientReusedID(t *testing.T) {
	dir := t.TempDir()
	a, _ := repoWith(t, dir, "a.git", "a")
	b, cb := repoWith(t, dir, "b.git", "b")
	c, _ := pipeServer(t, ServerOptions{}, "")
	for i := range 20 {
		if _, err := c.Watch("w1", a); err != nil {
			t.Fatal(err)
		}
		c.Unwatch("w1")
		s, err := c.Watch("w1", b)
		if err != nil {
			t.Fatal(err)
		}
		if e := next(t, s); e.Err != nil || !e.First || !e.Refs.Equal(watch.Refs{"refs/heads/b": cb}) {
			t.Fatalf("round %d: first event of the new watch: %+v", i, e)
		}
		c.Unwatch("w1")
	}
}

func shaN(n int) string { return fmt.Sprintf("%040x", n) }

// A subscriber that does not read holds up neither the stream nor the
// other subscribers, and when it reads it gets the latest refs with the
// changes since what it took merged.
func TestSlowSubscriberDoesNotBlock(t *testing.T) {
	cr, sw := io.Pipe()
	defer sw.Close()
	go func() { _, _ = io.WriteString(sw, Banner+"\n") }()
	c, err := NewClient(context.Background(), cr, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	slow, err := c.Watch("slow", "/s")
	if err != nil {
		t.Fatal(err)
	}
	fast, err := c.Watch("fast", "/f")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		_, _ = io.WriteString(sw, "REF slow "+shaN(1)+" refs/heads/a\nREADY slow\nREADY fast\n")
	}()
	initial := watch.Refs{"refs/heads/a": shaN(1)}
	if e := next(t, slow); !e.First || !e.Refs.Equal(initial) {
		t.Fatalf("slow first: %+v", e)
	}
	if e := next(t, fast); !e.First || len(e.Refs) != 0 {
		t.Fatalf("fast first: %+v", e)
	}
	const rounds = 100
	special := map[int]string{
		3:  "CHANGE slow " + shaN(2) + " refs/heads/a",
		10: "CHANGE slow " + shaN(1) + " refs/heads/tmp",
		20: "DELETE slow refs/heads/tmp",
		30: "CHANGE slow " + shaN(3) + " refs/heads/a",
	}
	taken := make(chan struct{})
	go func() {
		for i := range rounds {
			batch := "CHANGE slow " + shaN(100+i) + fmt.Sprintf(" refs/heads/n%d\n", i)
			if l, ok := special[i]; ok {
				batch += l + "\n"
			}
			batch += "END slow\n" + "CHANGE fast " + shaN(i+1) + " refs/heads/f\nEND fast\n"
			if _, err := io.WriteString(sw, batch); err != nil {
				return
			}
			select {
			case <-taken:
			case <-time.After(20 * time.Second):
				return
			}
		}
	}()
	for i := range rounds {
		e := next(t, fast)
		want := watch.Change{Ref: "refs/heads/f", Old: shaN(i), New: shaN(i + 1)}
		if i == 0 {
			want.Old = ""
		}
		if e.Err != nil || e.First || len(e.Changes) != 1 || e.Changes[0] != want {
			t.Fatalf("fast update %d: %+v", i, e)
		}
		taken <- struct{}{}
	}
	final := watch.Refs{"refs/heads/a": shaN(3)}
	for i := range rounds {
		final[fmt.Sprintf("refs/heads/n%d", i)] = shaN(100 + i)
	}
	e := next(t, slow)
	if e.Err != nil || e.First || !e.Refs.Equal(final) {
		t.Fatalf("slow: refs %v", e.Refs)
	}
	wantChanges := watch.Diff(initial, final)
	if fmt.Sprint(e.Changes) != fmt.Sprint(wantChanges) {
		t.Fatalf("slow changes:\n%v\nwant\n%v", e.Changes, wantChanges)
	}
	for _, ch := range e.Changes {
		if ch.Ref == "refs/heads/tmp" {
			t.Errorf("created and deleted meanwhile, yet reported: %+v", ch)
		}
		if ch.Ref == "refs/heads/a" && (ch.Old != shaN(1) || ch.New != shaN(3)) {
			t.Errorf("changed twice: %+v, want old->newest", ch)
		}
	}
	select {
	case e := <-slow.Events():
		t.Fatalf("a second event for the slow subscriber: %+v", e)
	default:
	}
}

// A far side that never sends the banner: NewClient returns when its
// context ends, or after the banner timeout.
func TestNewClientBannerWait(t *testing.T) {
	r, w := io.Pipe()
	defer w.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := NewClient(ctx, r, io.Discard)
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("NewClient kept waiting after its context ended")
	}
	go func() {
		_, err := newClient(context.Background(), r, io.Discard, 50*time.Millisecond)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrBannerTimeout) {
			t.Fatalf("err = %v, want ErrBannerTimeout", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("NewClient kept waiting after the banner timeout")
	}
}

// byteStream is n bytes of 'x'.
type byteStream struct{ n int }

var xs = []byte(strings.Repeat("x", 64<<10))

func (b *byteStream) Read(p []byte) (int, error) {
	if b.n == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), b.n)], xs)
	b.n -= n
	return n, nil
}

// A 200 MB line is answered "line too long", and not held in memory.
func TestServerLineTooLong(t *testing.T) {
	in := io.MultiReader(strings.NewReader("PING\n"), &byteStream{n: 200 << 20}, strings.NewReader("\nPING\n"))
	var out strings.Builder
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if err := Serve(context.Background(), in, &out, ServerOptions{}); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	want := Banner + "\nPONG\nERROR * line too long (over 16384 bytes)\nPONG\n"
	if out.String() != want {
		t.Errorf("output:\n%s\nwant:\n%s", out.String(), want)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
		t.Errorf("reading the line allocated %d bytes", alloc)
	}
}

// One stream asking for 10,000 watches of one repository gets
// DefaultMaxWatches of them, and those share one watcher.
func TestServerBoundsWatches(t *testing.T) {
	dir := t.TempDir()
	a, _ := repoWith(t, dir, "a.git", "a")
	hub, err := watch.NewHub(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	goroutines := runtime.NumGoroutine()

	sr, cw := io.Pipe()
	cr, sw := io.Pipe()
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	s := newServer(ctx, cancel, sw, ServerOptions{Hub: hub})
	served := make(chan error, 1)
	go func() {
		err := s.serve(sr)
		s.stopAll()
		s.wg.Wait()
		served <- err
		sw.Close()
	}()
	const n = 10000
	go func() {
		w := bufio.NewWriter(cw)
		for i := range n {
			fmt.Fprintf(w, "WATCH w%d %s\n", i, a)
		}
		_ = w.Flush()
	}()
	lines := linesOf(cr)
	if l := readLineWithin(t, lines); l != Banner {
		t.Fatalf("banner %q", l)
	}
	ready, refused := 0, 0
	for ready+refused < n {
		l := readLineWithin(t, lines)
		switch {
		case strings.HasPrefix(l, "READY "):
			ready++
		case strings.HasPrefix(l, "ERROR ") && strings.HasSuffix(l, fmt.Sprintf(" too many watches (%d)", DefaultMaxWatches)):
			refused++
		case strings.HasPrefix(l, "REF "):
		default:
			t.Fatalf("unexpected line %q", l)
		}
	}
	if ready != DefaultMaxWatches || refused != n-DefaultMaxWatches {
		t.Errorf("%d ready, %d refused; want %d and %d", ready, refused, DefaultMaxWatches, n-DefaultMaxWatches)
	}
	s.mu.Lock()
	watches, repos := len(s.watches), len(s.repos)
	s.mu.Unlock()
	if watches != DefaultMaxWatches || repos != 1 {
		t.Errorf("server holds %d watches of %d repositories; want %d of 1", watches, repos, DefaultMaxWatches)
	}
	if extra := runtime.NumGoroutine() - goroutines; extra > 20 {
		t.Errorf("%d goroutines for one stream", extra)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	used := int64(after.HeapAlloc+after.StackInuse) - int64(before.HeapAlloc+before.StackInuse)
	if used > 1<<20 {
		t.Errorf("%d watches of one repository hold %d bytes", DefaultMaxWatches, used)
	}
	t.Logf("%d watches hold %d bytes (%d per watch), %d extra goroutines", watches, used, used/int64(watches), runtime.NumGoroutine()-goroutines)
	cw.Close()
	if err := <-served; err != nil {
		t.Fatal(err)
	}
}

// An ERROR with a huge text still makes a line the other side accepts,
// and a line that parses renders back unchanged.
func TestErrorTextClipped(t *testing.T) {
	long := Msg{Kind: Error, ID: "w1", Text: strings.Repeat("é", MaxLine)}
	line := long.String()
	if m, err := Parse(line); err != nil || len(line) > MaxLine {
		t.Fatalf("%d-byte line: %v", len(line), err)
	} else if m.String() != line {
		t.Fatal("round trip changed the line")
	}
	exact := "ERROR w1 " + strings.Repeat("x", MaxLine-len("ERROR w1 "))
	if m, err := Parse(exact); err != nil || m.String() != exact {
		t.Fatalf("a line of exactly MaxLine bytes: %v", err)
	}
}

// Watches come and go on two repositories shared by several ids while
// their refs change: every watch starts with its own repository's refs
// and then sees only changes of that repository.
func TestServerSharedWatchesChurn(t *testing.T) {
	dir := t.TempDir()
	a, ca := repoWith(t, dir, "a.git", "a")
	b, cb := repoWith(t, dir, "b.git", "b")
	hub, err := watch.NewHub(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	c, _ := pipeServer(t, ServerOptions{Hub: hub}, "")
	repos := []struct {
		path, branch, commit string
	}{{a, "refs/heads/a", ca}, {b, "refs/heads/b", cb}}
	stop := make(chan struct{})
	changed := make(chan struct{})
	go func() { // keep creating and deleting a tag in both repositories
		defer close(changed)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			for _, r := range repos {
				args := []string{"--git-dir=" + r.path, "update-ref", "refs/tags/t", r.commit}
				if i%2 == 1 {
					args = []string{"--git-dir=" + r.path, "update-ref", "-d", "refs/tags/t"}
				}
				_ = exec.Command("git", args...).Run()
			}
		}
	}()
	defer func() { close(stop); <-changed }()
	for round := range 30 {
		id := fmt.Sprintf("w%d", round%4)
		r := repos[round%2]
		c.Unwatch(id)
		s, err := c.Watch(id, r.path)
		if err != nil {
			t.Fatal(err)
		}
		e := next(t, s)
		if e.Err != nil || !e.First || e.Refs[r.branch] != r.commit {
			t.Fatalf("round %d: %s of %s starts with %+v", round, id, r.path, e)
		}
		for ref, sha := range e.Refs {
			if sha != r.commit || strings.HasPrefix(ref, "refs/heads/") && ref != r.branch {
				t.Fatalf("round %d: %s of %s has %s %s", round, id, r.path, ref, sha)
			}
		}
		e = next(t, s)
		for _, ch := range e.Changes {
			if ch.New != "" && ch.New != r.commit {
				t.Fatalf("round %d: %s of %s sees %+v", round, id, r.path, ch)
			}
		}
	}
}
