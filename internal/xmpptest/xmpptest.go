// Package xmpptest starts a throwaway Prosody for tests: its own config,
// data directory and free ports on 127.0.0.1, TLS certificates from a CA
// the test makes, a SOCKS5 bytestreams proxy (XEP-0065, proxy65) and no
// limits module (Debian's /etc/prosody config throttles clients to
// 10 kB/s). The package never installs anything: scripts/test does
// (apt-get install prosody). See /work/shared/notes/xmpp.md.
package xmpptest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Binaries, looked up on PATH.
var (
	ProsodyPath    = "prosody"
	ProsodyctlPath = "prosodyctl"
)

// ReadyTimeout bounds the wait for a started server to accept clients
// (ejabberd's Erlang VM took over 20 s to listen on a loaded machine).
var ReadyTimeout = 60 * time.Second

// Server is a running Prosody.
type Server struct {
	Dir    string // config, data, certificates and log
	Domain string // the VirtualHost: "localhost"
	// Port accepts STARTTLS (and plaintext: c2s_require_encryption is
	// off, for recording tests); DirectTLSPort accepts direct TLS
	// (XEP-0368).
	Port, DirectTLSPort int
	// ProxyJID and ProxyPort are the SOCKS5 bytestreams proxy.
	ProxyJID  string
	ProxyPort int
	// proxyHost is the address proxy65 tells clients to connect to
	// (empty: 127.0.0.1, where it listens); see AdvertiseProxy.
	proxyHost string
	// CAFile is the PEM certificate of the CA that signed the server's
	// certificate (for "localhost" and 127.0.0.1).
	CAFile string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Start starts a Prosody for t and stops it and removes its files in
// t.Cleanup. A missing prosody fails the test.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// New starts a Prosody; Close stops it and removes its files.
func New() (*Server, error) {
	for _, p := range []string{ProsodyPath, ProsodyctlPath} {
		if _, err := exec.LookPath(p); err != nil {
			return nil, fmt.Errorf("xmpptest: %s not on PATH: install the prosody package (scripts/test does): %w", p, err)
		}
	}
	dir, err := os.MkdirTemp("", "xmpptest-")
	if err != nil {
		return nil, fmt.Errorf("xmpptest: %w", err)
	}
	s := &Server{Dir: dir, Domain: "localhost", ProxyJID: "proxy.localhost", CAFile: filepath.Join(dir, "ca.pem")}
	fail := func(err error) (*Server, error) {
		s.Close()
		return nil, err
	}
	for _, d := range []string{"data", "certs"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return fail(fmt.Errorf("xmpptest: %w", err))
		}
	}
	if err := writeCerts(s.CAFile, s.path("certs", s.Domain+".crt"), s.path("certs", s.Domain+".key"),
		[]string{s.Domain, s.ProxyJID}); err != nil {
		return fail(fmt.Errorf("xmpptest: certificates: %w", err))
	}
	for attempt := 1; ; attempt++ {
		ports, err := freePorts(3)
		if err != nil {
			return fail(err)
		}
		s.Port, s.DirectTLSPort, s.ProxyPort = ports[0], ports[1], ports[2]
		if err := s.writeConfig(); err != nil {
			return fail(err)
		}
		err = s.Restart()
		if err == nil {
			return s, nil
		}
		if !errors.Is(err, errPortInUse) || attempt == 3 {
			return fail(err)
		}
	}
}

var errPortInUse = errors.New("xmpptest: port in use")

func (s *Server) path(elem ...string) string {
	return filepath.Join(append([]string{s.Dir}, elem...)...)
}

// ConfigFile is the path of the server's config.
func (s *Server) ConfigFile() string { return s.path("prosody.cfg.lua") }

// LogFile is the path of the server's log.
func (s *Server) LogFile() string { return s.path("prosody.log") }

// Addr is the STARTTLS/plaintext client address "127.0.0.1:port".
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)) }

// DirectTLSAddr is the direct TLS client address.
func (s *Server) DirectTLSAddr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.DirectTLSPort))
}

// JID returns "user@domain".
func (s *Server) JID(user string) string { return user + "@" + s.Domain }

// AdvertiseProxy makes proxy65 tell clients to connect to host (it
// still listens on 127.0.0.1:ProxyPort): a test that records the
// bytestream traffic listens there (on another loopback address, such as
// 127.0.0.2, and the same port) and forwards to 127.0.0.1. It restarts
// the server.
func (s *Server) AdvertiseProxy(host string) error {
	s.Stop()
	s.mu.Lock()
	s.proxyHost = host
	err := s.writeConfig()
	s.mu.Unlock()
	if err != nil {
		return err
	}
	return s.Restart()
}

func (s *Server) writeConfig() error {
	q := strconv.Quote
	proxyHost := s.proxyHost
	if proxyHost == "" {
		proxyHost = "127.0.0.1"
	}
	cfg := fmt.Sprintf(`-- written by xmpptest
run_as_root = true
daemonize = false
pidfile = %s
data_path = %s
certificates = %s
interfaces = { "127.0.0.1" }
c2s_ports = { %d }
c2s_direct_tls_ports = { %d }
s2s_ports = { }
proxy65_ports = { %d }
proxy65_address = %s
use_ipv6 = false
modules_enabled = { "roster"; "saslauth"; "tls"; "disco"; "ping"; "posix"; "carbons"; "smacks" }
modules_disabled = { "s2s"; "offline" }
authentication = "internal_plain"
storage = "internal"
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
allow_registration = false
log = { { levels = { min = "info" }, to = "file", filename = %s } }

VirtualHost %s

Component %s "proxy65"
`, q(s.path("prosody.pid")), q(s.path("data")), q(s.path("certs")),
		s.Port, s.DirectTLSPort, s.ProxyPort, q(proxyHost), q(s.LogFile()), q(s.Domain), q(s.ProxyJID))
	if err := os.WriteFile(s.ConfigFile(), []byte(cfg), 0o600); err != nil {
		return fmt.Errorf("xmpptest: %w", err)
	}
	return nil
}

// Register creates an account (it works while the server runs).
func (s *Server) Register(user, password string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, ProsodyctlPath, "--config", s.ConfigFile(), "register", user, s.Domain, password)
	cmd.WaitDelay = time.Second
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("xmpptest: prosodyctl register %s: %w\n%s", user, err, out)
	}
	return nil
}

// Restart starts the server if it is stopped (same ports, same data:
// accounts and rosters survive).
func (s *Server) Restart() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return fmt.Errorf("xmpptest: prosody already running")
	}
	lf, err := os.OpenFile(s.LogFile(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("xmpptest: %w", err)
	}
	var off int64
	if fi, err := lf.Stat(); err == nil {
		off = fi.Size()
	}
	_ = os.Remove(s.path("prosody.pid"))
	cmd := exec.Command(ProsodyPath, "-F", "--config", s.ConfigFile())
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Dir = s.Dir
	dieWithParent(cmd)
	err = cmd.Start()
	lf.Close()
	if err != nil {
		return fmt.Errorf("xmpptest: start prosody: %w", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	s.cmd, s.done = cmd, done
	if err := s.waitReady(done); err != nil {
		s.stopLocked()
		log := s.logSince(off)
		if strings.Contains(log, "already in use") || strings.Contains(log, "Failed to open server port") {
			return fmt.Errorf("%w: %s", errPortInUse, log)
		}
		return fmt.Errorf("xmpptest: prosody not ready: %w\nprosody log:\n%s", err, log)
	}
	return nil
}

// waitReady waits for the pid file and both listening ports.
func (s *Server) waitReady(done <-chan struct{}) error {
	deadline := time.Now().Add(ReadyTimeout)
	for {
		select {
		case <-done:
			return fmt.Errorf("prosody exited")
		default:
		}
		err := s.probe()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready within %v: %w", ReadyTimeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *Server) probe() error {
	if _, err := os.Stat(s.path("prosody.pid")); err != nil {
		return err
	}
	for _, p := range []int{s.Port, s.DirectTLSPort, s.ProxyPort} {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), time.Second)
		if err != nil {
			return err
		}
		c.Close()
	}
	return nil
}

func (s *Server) logSince(off int64) string {
	b, err := os.ReadFile(s.LogFile())
	if err != nil || off > int64(len(b)) {
		return ""
	}
	return string(b[off:])
}

// Log returns the whole server log (for failure messages).
func (s *Server) Log() string { return s.logSince(0) }

// Stop stops the server: TERM, then KILL after 3 s. Idempotent; Restart
// starts it again.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

func (s *Server) stopLocked() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGCONT) // a paused server cannot stop
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(3 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd, s.done = nil, nil
}

// Pause freezes the server (SIGSTOP): connections stay open but nothing
// is answered, as when the network is lost. Resume thaws it.
func (s *Server) Pause() error { return s.signal(syscall.SIGSTOP) }

// Resume: see Pause.
func (s *Server) Resume() error { return s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return fmt.Errorf("xmpptest: prosody not running")
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("xmpptest: %v: %w", sig, err)
	}
	return nil
}

// Close stops the server and removes its directory.
func (s *Server) Close() {
	s.Stop()
	_ = os.RemoveAll(s.Dir)
}

// freePorts asks the kernel for n distinct free ports on 127.0.0.1. One
// may be taken again before prosody binds it: Restart reports
// errPortInUse then, and New retries.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("xmpptest: free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
