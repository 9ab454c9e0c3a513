package thnode

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/git-remote-daemon/git-remote-daemon/telehash"
)

// A running daemon lends its node to git-remote-th through a unix socket
// that only the user can open: two processes linking with one identity
// would reset each other's sessions at the peer, and the daemon's node
// may already be linked to a peer that git-remote-th could not reach
// (a URL with only a hashname). The exchange on the socket:
//
//	> DIAL <service> <th address>\n
//	< OK\n            (then the stream's bytes, both ways)
//	< ERR <why>\n

// SocketPath is the socket of the daemon running with identity hn:
// $XDG_RUNTIME_DIR/git-remote-daemon/<hashname[:16]>.sock, or under
// $TMPDIR/git-remote-daemon-<uid>/ (short paths: a socket path is
// limited to about 104 bytes).
func SocketPath(hn telehash.Hashname) string {
	dir := os.Getenv("XDG_RUNTIME_DIR")
	if dir != "" {
		dir = filepath.Join(dir, "git-remote-daemon")
	} else {
		dir = filepath.Join(os.TempDir(), fmt.Sprintf("git-remote-daemon-%d", os.Getuid()))
	}
	return filepath.Join(dir, string(hn)[:16]+".sock")
}

// ServeLocal lends the node to local git-remote-th processes on the
// socket of its identity until the node closes. Another daemon holding
// the socket already is not an error: it lends the same identity.
func (n *Node) ServeLocal() error {
	path := SocketPath(n.opts.Identity.Hashname())
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !fi.IsDir() || fi.Mode().Perm()&0o077 != 0 || !ok || int(st.Uid) != os.Getuid() {
		return fmt.Errorf("%s must be a directory of ours that only we can open", dir)
	}
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		return nil // another daemon with this identity lends it
	}
	_ = os.Remove(path) // stale, from a daemon that died
	l, err := net.Listen("unix", path)
	if err != nil {
		return err
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false) // close removes it, only if still ours
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return err
	}
	fi, err = os.Stat(path)
	if err != nil {
		l.Close()
		return err
	}
	if !n.local.set(l, path, fi) {
		l.Close()
		_ = os.Remove(path)
		return net.ErrClosed
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go n.lend(n.ctx, c.(*net.UnixConn))
		}
	}()
	return nil
}

// localListener is the node's lending socket, closed with the node
// before its successor (same identity, same path) binds it.
type localListener struct {
	mu     sync.Mutex
	l      net.Listener
	path   string
	fi     os.FileInfo
	closed bool
}

func (ll *localListener) set(l net.Listener, path string, fi os.FileInfo) bool {
	ll.mu.Lock()
	defer ll.mu.Unlock()
	if ll.closed {
		return false
	}
	ll.l, ll.path, ll.fi = l, path, fi
	return true
}

// close closes the listener and removes its socket file unless another
// daemon has bound the path since.
func (ll *localListener) close() {
	ll.mu.Lock()
	defer ll.mu.Unlock()
	ll.closed = true
	if ll.l == nil {
		return
	}
	ll.l.Close()
	if fi, err := os.Stat(ll.path); err == nil && os.SameFile(fi, ll.fi) {
		_ = os.Remove(ll.path)
	}
	ll.l = nil
}

func (n *Node) lend(ctx context.Context, c *net.UnixConn) {
	defer c.Close()
	br := bufio.NewReaderSize(c, 4096)
	line, err := br.ReadString('\n')
	if err != nil || len(line) > 4096 {
		return
	}
	f := strings.Fields(line)
	if len(f) != 3 || f[0] != "DIAL" {
		fmt.Fprintf(c, "ERR bad request\n")
		return
	}
	addr, err := ParseAddr(f[2])
	if err != nil {
		fmt.Fprintf(c, "ERR %s\n", oneLine(err))
		return
	}
	s, err := n.Dial(ctx, addr, f[1])
	if err != nil {
		fmt.Fprintf(c, "ERR %s\n", oneLine(err))
		return
	}
	defer s.Close()
	if _, err := io.WriteString(c, "OK\n"); err != nil {
		return
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if _, err := io.Copy(s, br); err == nil {
			_ = s.CloseWrite()
		} else {
			s.Abort("local end failed")
		}
	}()
	_, _ = io.Copy(c, s)
	_ = c.CloseWrite()
	wg.Wait()
}

// DialLocal asks the daemon lending identity hn for a stream to addr's
// service; it fails when no daemon runs.
func DialLocal(ctx context.Context, hn telehash.Hashname, addr Addr, service string) (io.ReadWriteCloser, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", SocketPath(hn))
	if err != nil {
		return nil, err
	}
	if _, err := fmt.Fprintf(c, "DIAL %s %s\n", service, addr); err != nil {
		c.Close()
		return nil, err
	}
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("the daemon did not answer: %w", err)
	}
	if msg, ok := strings.CutPrefix(strings.TrimSpace(line), "ERR "); ok {
		c.Close()
		return nil, errors.New(msg)
	}
	if strings.TrimSpace(line) != "OK" {
		c.Close()
		return nil, fmt.Errorf("the daemon answered %q", strings.TrimSpace(line))
	}
	return &localConn{Reader: br, Conn: c}, nil
}

type localConn struct {
	io.Reader
	net.Conn
}

func (l *localConn) Read(p []byte) (int, error) { return l.Reader.Read(p) }

func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", " ") }
