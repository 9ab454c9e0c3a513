package control

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
)

// maxSockPath is the longest path a unix socket address holds (108
// bytes with its NUL on Linux; 104 on the BSDs, kept for all).
const maxSockPath = 103

// withSockAddr calls fn with an address for the socket at path. A path
// too long for a socket address is reached through its open directory
// (/proc/self/fd/N/name), which Linux resolves for bind and connect.
func withSockAddr(path string, fn func(addr string) error) error {
	if len(path) <= maxSockPath {
		return fn(path)
	}
	dir, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer dir.Close()
	addr := fmt.Sprintf("/proc/self/fd/%d/%s", dir.Fd(), filepath.Base(path))
	if len(addr) > maxSockPath {
		return fmt.Errorf("%s: name too long for a unix socket", path)
	}
	return fn(addr)
}

// checkPeer refuses a client of another user (root included: it can
// reach the socket, but has no business driving a user's daemon).
func checkPeer(conn net.Conn) error {
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return nil
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return err
	}
	var cred *syscall.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return err
	}
	if credErr != nil {
		return fmt.Errorf("peer credentials: %w", credErr)
	}
	if int(cred.Uid) != os.Getuid() {
		return fmt.Errorf("peer pid %d is uid %d, not %d", cred.Pid, cred.Uid, os.Getuid())
	}
	return nil
}
