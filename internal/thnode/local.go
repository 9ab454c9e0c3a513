package thnode

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/git-remote-daemon/git-remote-daemon/telehash"
)

// The process hosting an identity's node (see hostLock) lends it to the
// other daemons and git-remote-th processes of that identity through a
// unix socket that only the user can open: two processes linking with
// one identity would reset each other's sessions at the peer, and the
// node may already be linked to a peer that git-remote-th could not
// reach (a URL with only a hashname). One request per connection:
//
//	> DIAL <service> <th address>[ wait]\n
//	< OK\n            (then the stream's bytes, both ways)
//	< ERR <why>\n
//	> UNLINK <hashname>\n       forget the session with a peer that stopped answering
//	< OK\n
//	> REGISTER <json>\n         serve a repository: {"dir","git_dir","common_dir"}
//	< OK <udp address>\n        (or ERR <why>), then, while the connection stays open:
//	> CONFIG\n                  its configuration changed: read it again
//	< OK\n | ERR <why>\n
//	> INVITE <json>\n           hold a pairing invitation for a registered
//	                            repository (local_invite.go)
//
// With wait, a DIAL to an address with only a hashname waits until that
// node links to us. The host reads a registered repository's
// configuration itself (the allow list of its th:: remotes), follows its
// changes, and serves it until the connection closes.

// SocketPath is the socket of the daemon running with identity hn:
// $XDG_RUNTIME_DIR/git-remote-daemon/<hashname[:16]>.sock, or under
// $TMPDIR/git-remote-daemon-<uid>/ (short paths: a socket path is
// limited to about 104 bytes). The directory must be the user's alone
// (see checkPrivateDir): in a shared /tmp another user may create it
// first.
func SocketPath(hn telehash.Hashname) string {
	dir := os.Getenv("XDG_RUNTIME_DIR")
	if dir != "" {
		dir = filepath.Join(dir, "git-remote-daemon")
	} else {
		dir = filepath.Join(os.TempDir(), fmt.Sprintf("git-remote-daemon-%d", os.Getuid()))
	}
	return filepath.Join(dir, string(hn)[:16]+".sock")
}

// ErrUntrustedSocket is wrapped by the error of DialLocal and ServeLocal
// when the lending socket, its directory or the process at its other end
// may belong to another user. Nothing was sent or served there.
var ErrUntrustedSocket = errors.New("untrusted local socket")

// checkPrivateDir verifies that dir is the user's alone: a directory,
// not a symbolic link, owned by the user, that nobody else may enter
// (mode 0700). The directory is checked by its path and once opened
// (without following a link), so a swap between the two is noticed. An
// absent directory gives an error wrapping fs.ErrNotExist.
func checkPrivateDir(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if err := private(dir, fi); err != nil {
		return err
	}
	f, err := os.OpenFile(dir, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_DIRECTORY, 0)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrUntrustedSocket, dir, err)
	}
	defer f.Close()
	ofi, err := f.Stat()
	if err != nil {
		return err
	}
	if !os.SameFile(fi, ofi) {
		return fmt.Errorf("%w: %s was replaced while checked", ErrUntrustedSocket, dir)
	}
	return private(dir, ofi)
}

// private says why fi, the file at path, is not a directory of the user
// that only the user may enter, or nil.
func private(path string, fi os.FileInfo) error {
	switch {
	case fi.Mode()&os.ModeSymlink != 0:
		return fmt.Errorf("%w: %s is a symbolic link", ErrUntrustedSocket, path)
	case !fi.IsDir():
		return fmt.Errorf("%w: %s is not a directory", ErrUntrustedSocket, path)
	}
	if err := ownedByUs(path, fi); err != nil {
		return err
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%w: %s has mode %#o, not 0700", ErrUntrustedSocket, path, perm)
	}
	return nil
}

func ownedByUs(path string, fi os.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("%w: %s: no owner known", ErrUntrustedSocket, path)
	}
	if uid := int(st.Uid); uid != os.Getuid() {
		return fmt.Errorf("%w: %s is owned by %s, not by %s", ErrUntrustedSocket, path, userName(uid), userName(os.Getuid()))
	}
	return nil
}

// checkPeer refuses a connection whose other end is another user's
// process (root included); how says what that end did ("served by",
// "dialled by"). Where the system cannot tell, the private directory is
// the guard.
func checkPeer(c *net.UnixConn, path, how string) error {
	uid, ok, err := peerUID(c)
	if err != nil {
		return fmt.Errorf("%w: %s: peer credentials: %v", ErrUntrustedSocket, path, err)
	}
	if ok && uid != os.Getuid() {
		return fmt.Errorf("%w: %s is %s %s, not by %s", ErrUntrustedSocket, path, how, userName(uid), userName(os.Getuid()))
	}
	return nil
}

// userName names a user id for messages: "uid 1001 (mallory)".
func userName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return fmt.Sprintf("uid %d (%s)", uid, u.Username)
	}
	return fmt.Sprintf("uid %d", uid)
}

// ServeLocal lends the node to local git-remote-th processes on the
// socket of its identity until the node closes. Another daemon holding
// the socket already is not an error: it lends the same identity. A
// socket directory that is not the user's alone is an error wrapping
// ErrUntrustedSocket; connections of other users are refused.
func (n *Node) ServeLocal() error {
	path := SocketPath(n.opts.Identity.Hashname())
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := checkPrivateDir(dir); err != nil {
		return err
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
	fi, err := os.Stat(path)
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
			uc := c.(*net.UnixConn)
			if err := checkPeer(uc, path, "dialled by"); err != nil {
				n.log.Warn("refused a local connection", "err", err)
				uc.Close()
				continue
			}
			go n.handleLocal(n.ctx, uc)
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

// DialLocal asks the process hosting the node of identity hn for a
// stream to addr's service; it fails when none runs (an error wrapping
// fs.ErrNotExist or syscall.ECONNREFUSED). Before anything is sent it
// checks that the socket's directory is the user's alone, that the
// socket is the user's, and that the process listening is the user's:
// otherwise the error wraps ErrUntrustedSocket.
func DialLocal(ctx context.Context, hn telehash.Hashname, addr Addr, service string) (io.ReadWriteCloser, error) {
	return dialLocal(ctx, hn, addr, service, false)
}

func dialLocal(ctx context.Context, hn telehash.Hashname, addr Addr, service string, wait bool) (*localConn, error) {
	line := localRequest{Verb: "DIAL", Service: service, Addr: addr, Wait: wait}.String()
	c, br, _, err := requestLocal(ctx, hn, line)
	if err != nil {
		return nil, err
	}
	return &localConn{Reader: br, Conn: c}, nil
}

// requestLocal connects to the socket of identity hn (checked as
// DialLocal says), sends line and reads the answer: what follows OK is
// returned as arg. The connection stays open for what follows.
func requestLocal(ctx context.Context, hn telehash.Hashname, line string) (*net.UnixConn, *bufio.Reader, string, error) {
	path := SocketPath(hn)
	if err := checkPrivateDir(filepath.Dir(path)); err != nil {
		return nil, nil, "", err
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, nil, "", err
	}
	if fi.Mode().Type() != os.ModeSocket {
		return nil, nil, "", fmt.Errorf("%w: %s is not a socket", ErrUntrustedSocket, path)
	}
	if err := ownedByUs(path, fi); err != nil {
		return nil, nil, "", err
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, nil, "", err
	}
	c := nc.(*net.UnixConn)
	if err := checkPeer(c, path, "served by"); err != nil {
		c.Close()
		return nil, nil, "", err
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		c.Close()
		return nil, nil, "", err
	}
	br := bufio.NewReader(c)
	arg, err := readAnswer(br)
	if err != nil {
		c.Close()
		if ctx.Err() != nil {
			return nil, nil, "", ctx.Err()
		}
		return nil, nil, "", err
	}
	return c, br, arg, nil
}

// readAnswer reads an "OK[ arg]" or "ERR why" line.
func readAnswer(br *bufio.Reader) (arg string, err error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("the node's host did not answer: %w", err)
	}
	line = strings.TrimSpace(line)
	if msg, ok := strings.CutPrefix(line, "ERR "); ok {
		return "", &remoteError{msg}
	}
	if line == "OK" {
		return "", nil
	}
	if arg, ok := strings.CutPrefix(line, "OK "); ok {
		return arg, nil
	}
	return "", fmt.Errorf("the node's host answered %q", line)
}

type localConn struct {
	io.Reader
	net.Conn
}

func (l *localConn) Read(p []byte) (int, error) { return l.Reader.Read(p) }

// Abort ends the stream: the host closes its end too.
func (l *localConn) Abort(string) { _ = l.Conn.Close() }

func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", " ") }
