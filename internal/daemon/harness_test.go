package daemon

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/internal/gitcfg"
	"github.com/git-remote-daemon/git-remote-daemon/internal/transport"
	"github.com/git-remote-daemon/git-remote-daemon/protocol"
	"github.com/git-remote-daemon/git-remote-daemon/watch"
)

// The daemon core driven in-process: a fake transport whose sessions the
// test drives, a fake watch of the repository's own refs, a recording
// emitter and a fake clock. Actions and pushes run real git.

// guard bounds every wait of a test for something the daemon must do: a
// daemon that never does it fails the test instead of hanging it. It is
// no measure of speed.
const guard = 20 * time.Second

// fakeClock is a clock whose time moves only when the test says so.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []fakeTimer
	waits  chan time.Duration // every After, as it is asked for
}

type fakeTimer struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), waits: make(chan time.Duration, 1000)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	t := fakeTimer{at: c.now.Add(d), ch: make(chan time.Time, 1)}
	if d <= 0 {
		t.ch <- c.now
	} else {
		c.timers = append(c.timers, t)
	}
	c.mu.Unlock()
	c.waits <- d
	return t.ch
}

// Advance moves the time on by d, firing the timers that are due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.timers = slices.DeleteFunc(c.timers, func(t fakeTimer) bool {
		if t.at.After(c.now) {
			return false
		}
		t.ch <- c.now
		return true
	})
}

// nextWait returns the delay of the next wait the daemon starts.
func (c *fakeClock) nextWait(t *testing.T) time.Duration {
	t.Helper()
	select {
	case d := <-c.waits:
		return d
	case <-time.After(guard):
		t.Fatal("the daemon never waited")
		return 0
	}
}

// fakeDialer hands out watchers whose sessions (one per Watch call) the
// test receives, per remote, and drives.
type fakeDialer struct {
	mu       sync.Mutex
	sessions map[string]chan *session
	envs     map[string][]string // the GitEnv of each remote's watcher
	joins    map[string]chan struct{}
}

func newFakeDialer() *fakeDialer {
	return &fakeDialer{sessions: map[string]chan *session{}, envs: map[string][]string{}, joins: map[string]chan struct{}{}}
}

func (f *fakeDialer) joinCh(remote string) chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.joins[remote]
	if !ok {
		c = make(chan struct{}, 1)
		f.joins[remote] = c
	}
	return c
}

// join signals that a node of the remote came back (transport.Joiner).
func (f *fakeDialer) join(remote string) { f.joinCh(remote) <- struct{}{} }

func (f *fakeDialer) ch(remote string) chan *session {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.sessions[remote]
	if !ok {
		c = make(chan *session, 100)
		f.sessions[remote] = c
	}
	return c
}

// setEnv sets what the remote's watcher answers to GitEnv.
func (f *fakeDialer) setEnv(remote string, env []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.envs[remote] = env
}

func (f *fakeDialer) NewWatcher(r gitcfg.Remote, env transport.Env) (transport.Watcher, error) {
	return &fakeWatcher{f: f, name: r.Name}, nil
}

// next returns the next session of the remote's watcher.
func (f *fakeDialer) next(t *testing.T, remote string) *session {
	t.Helper()
	select {
	case s := <-f.ch(remote):
		return s
	case <-time.After(guard):
		t.Fatalf("remote %s was never watched", remote)
		return nil
	}
}

// none fails if a session of the remote has started and not been taken.
func (f *fakeDialer) none(t *testing.T, remote string) {
	t.Helper()
	select {
	case <-f.ch(remote):
		t.Fatalf("remote %s was watched again", remote)
	default:
	}
}

type fakeWatcher struct {
	f    *fakeDialer
	name string
}

var (
	_ transport.Watcher  = (*fakeWatcher)(nil)
	_ transport.GitEnver = (*fakeWatcher)(nil)
	_ transport.Joiner   = (*fakeWatcher)(nil)
)

func (w *fakeWatcher) Joined() <-chan struct{} { return w.f.joinCh(w.name) }

func (w *fakeWatcher) GitEnv() []string {
	w.f.mu.Lock()
	defer w.f.mu.Unlock()
	return w.f.envs[w.name]
}

// session is one Watch call.
type session struct {
	ctx     context.Context
	updates chan watch.Update
	acks    chan error
	end     chan error
}

func (w *fakeWatcher) Watch(ctx context.Context, fn func(watch.Update) error) error {
	return runSession(ctx, w.f.ch(w.name), fn)
}

func runSession(ctx context.Context, sessions chan *session, fn func(watch.Update) error) error {
	s := &session{ctx: ctx, updates: make(chan watch.Update), acks: make(chan error, 1), end: make(chan error)}
	select {
	case sessions <- s:
	case <-ctx.Done():
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case u := <-s.updates:
			err := fn(u)
			s.acks <- err
			if err != nil {
				return err
			}
		case err := <-s.end:
			return err
		}
	}
}

// send delivers an update and waits until the daemon has taken it in.
func (s *session) send(t *testing.T, u watch.Update) {
	t.Helper()
	select {
	case s.updates <- u:
	case <-s.ctx.Done():
		t.Fatal("update sent to a watch that ended")
	case <-time.After(guard):
		t.Fatal("update never taken")
	}
	if err := <-s.acks; err != nil {
		t.Fatalf("update refused: %v", err)
	}
}

// first delivers the first update of a connection.
func (s *session) first(t *testing.T, refs watch.Refs) {
	t.Helper()
	s.send(t, watch.Update{First: true, Refs: refs})
}

// change delivers refs that differ from old.
func (s *session) change(t *testing.T, old, refs watch.Refs) {
	t.Helper()
	s.send(t, watch.Update{Refs: refs, Changes: watch.Diff(old, refs)})
}

// fail ends the session with err (nil: the connection closed).
func (s *session) fail(t *testing.T, err error) {
	t.Helper()
	select {
	case s.end <- err:
	case <-time.After(guard):
		t.Fatal("the watch never ended")
	}
}

// alive reports whether the daemon still runs this session.
func (s *session) alive() bool { return s.ctx.Err() == nil }

// recorder is an Emitter keeping every message.
type recorder struct {
	mu    sync.Mutex
	lines []string
	grew  chan struct{}
}

func newRecorder() *recorder { return &recorder{grew: make(chan struct{}, 1)} }

func (r *recorder) Emit(m protocol.Message) {
	r.mu.Lock()
	r.lines = append(r.lines, m.String())
	r.mu.Unlock()
	select {
	case r.grew <- struct{}{}:
	default:
	}
}

func (r *recorder) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.lines)
}

// count returns how many lines match the regular expression (anchored).
func (r *recorder) count(expr string) int {
	re := regexp.MustCompile("^(?:" + expr + ")$")
	n := 0
	for _, l := range r.all() {
		if re.MatchString(l) {
			n++
		}
	}
	return n
}

// await waits until n lines match expr.
func (r *recorder) await(t *testing.T, n int, expr string) {
	t.Helper()
	deadline := time.After(guard)
	for r.count(expr) < n {
		select {
		case <-r.grew:
		case <-deadline:
			t.Fatalf("waited for %d lines %q; got:\n%s", n, expr, strings.Join(r.all(), "\n"))
		}
	}
}

// exactly fails unless exactly n lines match expr.
func (r *recorder) exactly(t *testing.T, n int, expr string) {
	t.Helper()
	if got := r.count(expr); got != n {
		t.Fatalf("%d lines %q, want %d; got:\n%s", got, expr, n, strings.Join(r.all(), "\n"))
	}
}

// harness is a daemon running in a fresh repository.
type harness struct {
	t      *testing.T
	dir    string // the repository's work tree
	d      *Daemon
	clock  *fakeClock
	dialer *fakeDialer
	out    *recorder
	self   chan *session // sessions of the watch of the repository's own refs
	cancel context.CancelFunc
	done   chan error
}

// newHarness makes a repository, lets setup configure it (git config
// lines: "key value"), and starts a daemon in it.
func newHarness(t *testing.T, config ...string) *harness {
	t.Helper()
	return newHarnessWith(t, nil, config...)
}

// newHarnessWith is newHarness with more options set by with.
func newHarnessWith(t *testing.T, with func(*Options), config ...string) *harness {
	t.Helper()
	dir := t.TempDir()
	git(t, dir, "init", "-q", "-b", "main")
	for _, kv := range config {
		k, v, _ := strings.Cut(kv, " ")
		git(t, dir, "config", k, v)
	}
	h := &harness{t: t, dir: dir, clock: newFakeClock(), dialer: newFakeDialer(), out: newRecorder(),
		self: make(chan *session, 100), done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	opts := Options{Dir: dir, Out: h.out,
		Transports: transport.Registry{transport.Local: h.dialer},
		MinBackoff: time.Second, MaxBackoff: 8 * time.Second, StableAfter: time.Minute,
		clock: h.clock,
		watchSelf: func(ctx context.Context, fn func(watch.Update) error) error {
			return runSession(ctx, h.self, fn)
		}}
	if with != nil {
		with(&opts)
	}
	d, err := New(ctx, opts)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	h.d = d
	go func() { h.done <- d.Serve(ctx, nil) }()
	// Serve has started the remotes once it let go of the lock.
	for {
		d.mu.Lock()
		started := d.ctx != nil
		d.mu.Unlock()
		if started {
			break
		}
		runtime.Gosched()
	}
	t.Cleanup(h.stop)
	return h
}

func (h *harness) stop() {
	h.cancel()
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("Serve: %v", err)
		}
	case <-time.After(guard):
		h.t.Error("the daemon never stopped")
	}
}

// do handles a command as the command loop of Serve does, and returns
// once it is handled.
func (h *harness) do(m protocol.Message) {
	h.t.Helper()
	h.d.handle(m)
}

// selfSession returns the next watch of the repository's own refs.
func (h *harness) selfSession() *session {
	h.t.Helper()
	select {
	case s := <-h.self:
		return s
	case <-time.After(guard):
		h.t.Fatal("the repository's own refs were never watched")
		return nil
	}
}

// git runs git in dir and returns its trimmed output.
func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = testGitEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func testGitEnv() []string {
	return append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
		"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com", "GIT_TERMINAL_PROMPT=0")
}

// bare makes a bare repository under the test's temporary directory.
func bare(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	git(t, "", "init", "-q", "--bare", "-b", "main", p)
	return p
}

// commit makes an empty commit in dir and returns its name.
func commit(t *testing.T, dir, msg string) string {
	t.Helper()
	git(t, dir, "commit", "-q", "--allow-empty", "-m", msg)
	return git(t, dir, "rev-parse", "HEAD")
}

// refsOf returns the refs of a repository.
func refsOf(t *testing.T, gitDir string) watch.Refs {
	t.Helper()
	refs, err := watch.Snapshot(context.Background(), gitDir)
	if err != nil {
		t.Fatal(err)
	}
	return refs
}

func sha(n int) string { return fmt.Sprintf("%040x", n) }

func TestMain(m *testing.M) {
	// The daemon's own git commands see this environment.
	for _, kv := range testGitEnv() {
		k, v, _ := strings.Cut(kv, "=")
		os.Setenv(k, v)
	}
	os.Exit(m.Run())
}

// gitErr runs git in dir and returns its error.
func gitErr(dir string, args ...string) error {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = testGitEnv()
	return cmd.Run()
}
