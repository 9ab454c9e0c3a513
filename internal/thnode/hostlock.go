package thnode

import (
	"errors"
	"net"
	"os"
	"strings"
	"syscall"
)

// One process per identity and machine hosts the identity's node: the
// one holding an exclusive lock (flock) on the file next to the
// identity, <identity>.node.lock. The lock goes with the process (a
// crash frees it), and a process that sees it taken uses the node
// through its host's lending socket instead (see ServeLocal). The file
// also keeps the UDP address the last host bound, so that the next one
// binds the same address and the peers find the node where it was.

// hostLock is a held host lock.
type hostLock struct{ f *os.File }

// nodeLockPath is the host lock of the identity at identityPath.
func nodeLockPath(identityPath string) string { return identityPath + ".node.lock" }

// tryHostLock takes the host lock of the identity at identityPath
// without waiting; nil, nil when another process holds it.
func tryHostLock(identityPath string) (*hostLock, error) {
	f, err := os.OpenFile(nodeLockPath(identityPath), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if errors.Is(err, syscall.EWOULDBLOCK) {
		f.Close()
		return nil, nil
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return &hostLock{f: f}, nil
}

// lastAddr is the UDP address the previous host bound ("" if unknown).
func (l *hostLock) lastAddr() string {
	b := make([]byte, 256)
	n, _ := l.f.ReadAt(b, 0)
	addr, ok := strings.CutPrefix(strings.TrimSpace(string(b[:n])), "udp ")
	if !ok {
		return ""
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return ""
	}
	return addr
}

// record keeps the address the node is bound to for the next host.
func (l *hostLock) record(addr string) {
	if err := l.f.Truncate(0); err == nil {
		_, _ = l.f.WriteAt([]byte("udp "+addr+"\n"), 0)
	}
}

// release frees the lock (closing the file does).
func (l *hostLock) release() { _ = l.f.Close() }

// hostListen is the address a new host binds: listen as configured
// when it names a port; otherwise (an ephemeral port) the port the last
// host had on the same interfaces, so that peers find the node where it
// was; "" last means listen as given.
func hostListen(listen, last string) []string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil || port != "0" || last == "" {
		return []string{listen}
	}
	lhost, lport, err := net.SplitHostPort(last)
	if err != nil || lport == "0" || !sameHost(host, lhost) {
		return []string{listen}
	}
	return []string{net.JoinHostPort(host, lport), listen}
}

func sameHost(a, b string) bool {
	norm := func(h string) string {
		if h == "" || h == "::" || h == "[::]" {
			return "0.0.0.0"
		}
		return h
	}
	return norm(a) == norm(b)
}
