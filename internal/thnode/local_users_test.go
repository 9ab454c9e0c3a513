package thnode

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/telehash"
)

// roleEnv makes the test binary, run by TestLocalSocketRole, play a
// part in TestLocalSocketOtherUsers as another user.
const roleEnv = "GRD_THNODE_TEST_ROLE"

// localUser is a user made for a test.
type localUser struct {
	name     string
	uid, gid int
	home     string
}

// newLocalUser creates a user with a unique name, deleted (with its
// home) when the test ends.
func newLocalUser(t *testing.T, prefix string) localUser {
	t.Helper()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := prefix + hex.EncodeToString(b)
	if out, err := exec.Command("useradd", "--create-home", "--user-group", "--shell", "/bin/sh", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd %s: %v\n%s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("userdel", "-r", name).CombinedOutput(); err != nil {
			t.Errorf("userdel -r %s: %v\n%s", name, err, out)
		}
	})
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return localUser{name: name, uid: uid, gid: gid, home: u.HomeDir}
}

// command runs the test binary bin as u, in role, with env added to a
// bare environment (no XDG_RUNTIME_DIR, no TMPDIR: the /tmp fallback).
func (u localUser) command(bin, role string, env ...string) *exec.Cmd {
	cmd := exec.Command("setpriv", "--reuid="+strconv.Itoa(u.uid), "--regid="+strconv.Itoa(u.gid), "--clear-groups",
		bin, "-test.run=^TestLocalSocketRole$")
	cmd.Dir = u.home
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + u.home, "USER=" + u.name, roleEnv + "=" + role}, env...)
	return cmd
}

// worldCopy copies the test binary where every user may run it.
func worldCopy(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "grd-bin-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "thnode.test")
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// TestLocalSocketOtherUsers: with two real users, another local user
// cannot get a user's git traffic through the lending socket, nor use a
// user's node through it.
func TestLocalSocketOtherUsers(t *testing.T) {
	if os.Getuid() != 0 {
		if os.Getenv("GRD_REQUIRE_PEERS") != "" {
			t.Fatal("this test creates users: it must run as root")
		}
		t.Skip("creates two users: needs root (GRD_REQUIRE_PEERS=1 makes this a failure)")
	}
	bin := worldCopy(t)
	victim := newLocalUser(t, "grdv")
	attacker := newLocalUser(t, "grda")

	// The victim's identity, readable by the victim only.
	id := identity(t)
	idPath := filepath.Join(victim.home, "th-id.json")
	if err := id.Save(idPath); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(idPath, victim.uid, victim.gid); err != nil {
		t.Fatal(err)
	}
	// The node the victim fetches from (run by root, serving a real
	// repository), for the victim's own node to link to.
	repo := filepath.Join(t.TempDir(), "r.git")
	git(t, "", "init", "-q", "--bare", repo)
	peerID := identity(t)
	peer, err := Start(context.Background(), Options{Identity: peerID, Listen: "127.0.0.1:0", GitDir: repo,
		Allow: func(h telehash.Hashname) bool { return h == id.Hashname() }})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	peerAddr := peer.Addr().String()
	// The fallback socket of the victim (XDG_RUNTIME_DIR unset).
	sockDir := filepath.Join(os.TempDir(), fmt.Sprintf("git-remote-daemon-%d", victim.uid))
	sockName := string(id.Hashname())[:16] + ".sock"
	t.Cleanup(func() { os.RemoveAll(sockDir) })

	// runVictim opens a git stream as the victim; its output says
	// DIALED when it did.
	runVictim := func(t *testing.T) (stdout, stderr string) {
		t.Helper()
		cmd := victim.command(bin, "victim", "GRD_ID="+idPath, "GRD_ADDR="+peerAddr)
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		if err := cmd.Run(); err != nil {
			t.Errorf("victim: %v", err)
		}
		return o.String(), e.String()
	}

	t.Run("squatted directory", func(t *testing.T) {
		defer os.RemoveAll(sockDir)
		// The attacker makes the victim's socket directory first and
		// listens in it.
		trap := attacker.command(bin, "trap", "GRD_DIR="+sockDir, "GRD_SOCK="+sockName)
		stdin, err := trap.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		out, err := trap.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var trapErr bytes.Buffer
		trap.Stderr = &trapErr
		if err := trap.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { // after a failure; a no-op once it ended
			_ = trap.Process.Kill()
			_ = trap.Wait()
		})
		lines := bufio.NewScanner(out)
		if !lines.Scan() || lines.Text() != "READY" {
			t.Fatalf("the attacker's listener did not start: %q %s", lines.Text(), trapErr.String())
		}

		vout, verr := runVictim(t)

		stdin.Close() // the trap reports, and ends
		var caught []string
		for lines.Scan() {
			caught = append(caught, lines.Text())
		}
		if err := trap.Wait(); err != nil {
			t.Errorf("attacker: %v\n%s", err, trapErr.String())
		}
		if len(caught) > 0 {
			t.Errorf("the attacker's listener got: %q", caught)
		}
		if strings.TrimSpace(vout) != "DIALED" {
			t.Errorf("the victim did not fall back to linking alone: %s%s", vout, verr)
		}
		want := fmt.Sprintf("%s is owned by uid %d (%s)", sockDir, attacker.uid, attacker.name)
		if n := strings.Count(verr, "\n"); n != 1 || !strings.Contains(verr, "level=WARN") ||
			!strings.Contains(verr, want) || !strings.Contains(verr, "linking alone") {
			t.Errorf("want one warning line naming %q; the victim's stderr:\n%s", want, verr)
		}
	})

	t.Run("socket served by another user", func(t *testing.T) {
		defer os.RemoveAll(sockDir)
		// Root (any other user with the means) serves a socket in a
		// directory that passes every check: only its uid tells.
		if err := os.Mkdir(sockDir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(sockDir, victim.uid, victim.gid); err != nil {
			t.Fatal(err)
		}
		rec := newRecorder(t, filepath.Join(sockDir, sockName))
		if err := os.Chown(rec.path, victim.uid, victim.gid); err != nil {
			t.Fatal(err)
		}

		vout, verr := runVictim(t)

		if got := rec.before(t); len(got) != 1 || got[0] != "" {
			t.Errorf("the other user's listener got %q, want one connection that sent nothing", got)
		}
		if strings.TrimSpace(vout) != "DIALED" {
			t.Errorf("the victim did not fall back to linking alone: %s%s", vout, verr)
		}
		if want := "is served by uid 0 (root), not by uid " + strconv.Itoa(victim.uid); !strings.Contains(verr, want) {
			t.Errorf("want a warning naming %q; the victim's stderr:\n%s", want, verr)
		}
	})

	t.Run("daemon refuses other users", func(t *testing.T) {
		// Root's daemon lends its node; its socket is made reachable to
		// all (a mistake), and the attacker asks for a stream.
		runtime, err := os.MkdirTemp("", "grd-run-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(runtime)
		t.Setenv("XDG_RUNTIME_DIR", runtime)
		var logs syncBuffer
		n, err := Start(context.Background(), Options{Identity: identity(t), Listen: "127.0.0.1:0", GitDir: repo,
			Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		defer n.Close()
		if err := n.ServeLocal(); err != nil {
			t.Fatal(err)
		}
		path := SocketPath(n.opts.Identity.Hashname())
		for _, p := range []string{runtime, filepath.Dir(path), path} {
			if err := os.Chmod(p, 0o777); err != nil {
				t.Fatal(err)
			}
		}
		// An address without key and path: a node that serves it
		// answers "ERR ... not linked" at once.
		cmd := attacker.command(bin, "intruder", "GRD_SOCK="+path, "GRD_ADDR="+Scheme+string(peerID.Hashname()))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("intruder: %v\n%s", err, out)
		}
		if got := strings.TrimSpace(string(out)); got != `GOT ""` {
			t.Errorf("the other user got an answer from the daemon: %s", got)
		}
		if want := fmt.Sprintf("is dialled by uid %d (%s), not by uid 0 (root)", attacker.uid, attacker.name); !strings.Contains(logs.String(), want) {
			t.Errorf("want the refusal logged; the daemon's log:\n%s", logs.String())
		}
	})
}

// TestLocalSocketRole is a part another user plays in
// TestLocalSocketOtherUsers; it does nothing unless asked to.
func TestLocalSocketRole(t *testing.T) {
	var err error
	switch os.Getenv(roleEnv) {
	case "":
		return
	case "victim":
		err = roleVictim()
	case "trap":
		err = roleTrap()
	case "intruder":
		err = roleIntruder()
	default:
		err = fmt.Errorf("unknown role %q", os.Getenv(roleEnv))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "role:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// roleVictim is git-remote-th's client: it opens a git stream to
// $GRD_ADDR and prints DIALED, its warnings going to stderr.
func roleVictim() error {
	id, err := telehash.LoadIdentity(os.Getenv("GRD_ID"))
	if err != nil {
		return err
	}
	addr, err := ParseAddr(os.Getenv("GRD_ADDR"))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	c := &Client{Identity: id, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	defer c.Close()
	s, err := c.Dial(ctx, addr, ServiceGit)
	if err != nil {
		return err
	}
	s.Close()
	fmt.Println("DIALED")
	return nil
}

// roleTrap makes $GRD_DIR (open to all) and listens on $GRD_SOCK in it;
// it prints READY, then what each connection sends, until stdin ends.
func roleTrap() error {
	dir := os.Getenv("GRD_DIR")
	if err := os.Mkdir(dir, 0o777); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		return err
	}
	path := filepath.Join(dir, os.Getenv("GRD_SOCK"))
	l, err := net.Listen("unix", path)
	if err != nil {
		return err
	}
	defer l.Close()
	if err := os.Chmod(path, 0o777); err != nil {
		return err
	}
	var mu sync.Mutex
	say := func(format string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Printf(format+"\n", a...)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			say("ACCEPTED")
			line, _ := bufio.NewReader(c).ReadString('\n')
			say("GOT %q", line)
			fmt.Fprintf(c, "ERR trapped\n")
			c.Close()
		}
	}()
	say("READY")
	_, _ = io.Copy(io.Discard, os.Stdin)
	mu.Lock() // nothing printed after this
	return nil
}

// roleIntruder asks the daemon at $GRD_SOCK for a git stream to
// $GRD_ADDR and prints the answer.
func roleIntruder() error {
	c, err := net.DialTimeout("unix", os.Getenv("GRD_SOCK"), hangGuard)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(hangGuard))
	if _, err := fmt.Fprintf(c, "DIAL %s %s\n", ServiceGit, os.Getenv("GRD_ADDR")); err != nil {
		// A closed connection is the refusal we expect.
		fmt.Printf("GOT %q\n", "")
		return nil
	}
	got, _ := io.ReadAll(c)
	fmt.Printf("GOT %q\n", got)
	return nil
}

// syncBuffer is a bytes.Buffer safe for a logger and a test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
