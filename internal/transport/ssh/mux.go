package ssh

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The daemon's own git commands for a remote (fetch, push) reach the far
// side through the notify-changes session already running there, when it
// offers streams (notify's mux1): git runs `git-remote-daemon ssh-mux`
// as its ssh (GIT_SSH_COMMAND, for those commands only); the shim
// connects to the connection's private socket, and the daemon relays its
// bytes over a stream of the session, on which the far side runs the
// real git upload-pack or receive-pack. No new ssh session, no remote
// shell per fetch. Anything else (no mux1, the socket gone) takes the
// ordinary path: ssh over the shared master.

// DisableMuxEnv, set in the daemon's environment, keeps its git commands
// on the ordinary path.
const DisableMuxEnv = "GIT_REMOTE_DAEMON_NO_MUX"

// ShimCommand is the hidden subcommand git runs as its ssh.
const ShimCommand = "ssh-mux"

// negotiateWait bounds the wait for the answer to CAPS.
const negotiateWait = 20 * time.Second

// MuxSuffix ends the name of a connection's git socket, next to its
// ControlPath in the dialer's private directory (0700).
const MuxSuffix = ".git"

// muxSeq numbers the git sockets of a daemon's connections.
var muxSeq atomic.Int64

// listenMux opens the connection's git socket and relays each client
// (an ssh-mux shim) over a new stream of the notify session. Each
// connection has a socket of its own: one a later connection to the same
// host would reuse could be unlinked by this one's end. A fetch whose
// connection ended finds no socket and takes the ordinary path.
func (c *conn) listenMux() error {
	path := fmt.Sprintf("%s.%d%s", c.ctlPath, muxSeq.Add(1), MuxSuffix)
	if err := checkPrivateDir(filepath.Dir(path)); err != nil {
		return err
	}
	ln, err := net.Listen("unix", path) // unlinked again by ln.Close
	if err != nil {
		return fmt.Errorf("git socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("git socket: %w", err)
	}
	c.muxPath = path
	c.procs.Add(2)
	go func() {
		defer c.procs.Done()
		<-c.done
		ln.Close()
	}()
	go func() {
		defer c.procs.Done()
		var relays sync.WaitGroup
		defer relays.Wait()
		for {
			sock, err := ln.Accept()
			if err != nil {
				return
			}
			relays.Add(1)
			go func() {
				defer relays.Done()
				c.relay(sock.(*net.UnixConn))
			}()
		}
	}()
	return nil
}

// relay copies one shim's bytes to a new stream and back. The far side
// ends its side after the service's EXIT (or when it failed); the shim,
// which has everything by then, gets its end of input.
func (c *conn) relay(sock *net.UnixConn) {
	defer sock.Close()
	st, err := c.client.Open()
	if err != nil {
		return // the shim sees its input end before any frame: it falls back
	}
	// When the connection ends, the stream's reads fail: the shim's
	// socket is closed and it reports the lost connection.
	defer st.Close()
	go func() {
		if _, err := io.Copy(st, sock); err == nil {
			_ = st.CloseWrite()
		} else {
			_ = st.Close() // the shim vanished: the far side kills the service
		}
	}()
	_, _ = io.Copy(sock, st)
	_ = sock.CloseWrite()
}

// checkPrivateDir refuses a directory others may enter: the git socket
// is the key to the user's remote repositories.
func checkPrivateDir(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("git socket directory: %w", err)
	}
	if !fi.IsDir() || fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("git socket directory %s: mode %s, want a directory of mode 0700", dir, fi.Mode())
	}
	if uid, ok := fileOwner(fi); ok && uid != os.Geteuid() {
		return fmt.Errorf("git socket directory %s: owned by uid %d, not by us (%d)", dir, uid, os.Geteuid())
	}
	return nil
}

// checkPrivateSocket refuses a socket that is not ours alone.
func checkPrivateSocket(path string) error {
	if err := checkPrivateDir(filepath.Dir(path)); err != nil {
		return err
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("git socket %s: mode %s, want a socket of mode 0600", path, fi.Mode())
	}
	if uid, ok := fileOwner(fi); ok && uid != os.Geteuid() {
		return fmt.Errorf("git socket %s: owned by uid %d, not by us (%d)", path, uid, os.Geteuid())
	}
	return nil
}

var (
	selfOnce sync.Once
	selfPath string
	selfErr  error
)

// ProgramName is the name this program is installed under.
const ProgramName = "git-remote-daemon"

// self is this program's path, for the shim. The binary started may be
// a multi-call one (the test binary, which testscript puts on PATH as
// git-remote-daemon, or which runs the daemon in process): then the
// git-remote-daemon it was started as, or the one on PATH, is taken.
func self() (string, error) {
	selfOnce.Do(func() {
		exe, err := os.Executable()
		if err == nil && filepath.Base(exe) == ProgramName {
			selfPath = exe
			return
		}
		for _, name := range []string{os.Args[0], ProgramName} {
			if p, lerr := exec.LookPath(name); lerr == nil && filepath.Base(p) == ProgramName {
				if abs, aerr := filepath.Abs(p); aerr == nil {
					selfPath = abs
					return
				}
			}
		}
		if err == nil { // installed under another name
			selfPath = exe
			return
		}
		selfErr = err
	})
	return selfPath, selfErr
}

// fileOwner is the uid owning a file, where the system says.
func fileOwner(fi os.FileInfo) (int, bool) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid), true
	}
	return 0, false
}

func (d *Dialer) log() *slog.Logger {
	if d.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return d.Logger
}

// muxEnv is the environment that makes git reach the far side through
// the connection's git socket, with the ordinary ssh command line as the
// shim's fallback.
func muxEnv(c *conn, ordinary string) []string {
	exe, err := self()
	if err != nil || c.muxPath == "" || os.Getenv(DisableMuxEnv) != "" {
		return nil
	}
	line := shellQuote(exe) + " " + ShimCommand + " --socket " + shellQuote(c.muxPath) +
		" --fallback " + shellQuote(ordinary) + " --"
	// The shim takes OpenSSH's arguments (the fallback is OpenSSH), and
	// git passes GIT_PROTOCOL only to that variant.
	return []string{"GIT_SSH_COMMAND=" + line, "GIT_SSH_VARIANT=ssh"}
}
