package xmpptest

// A throwaway ejabberd 23.01 (Debian), so that tests know the project
// is not tied to Prosody. It runs beam.smp as a child of the test (erl
// execs it: the child's pid is the server's), as root without su, with
// its own YAML config, Mnesia spool and log directory, free ports on
// 127.0.0.1, and an Erlang node name and cookie of its own. No epmd is
// used or started: the node listens for distribution on a port the test
// picks (-erl_epmd_port, -start_epmd false) and ejabberdctl's work
// (ejabberd_ctl) is done by an erl started the same way, so nothing
// touches a system ejabberd, /etc/ejabberd or /var/lib/ejabberd.

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
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

// ErlPath is the Erlang runtime's erl, looked up on PATH.
var ErlPath = "erl"

// ejabberdLibs finds where Debian's ejabberd package put its Erlang
// applications (/usr/lib/<multiarch>/ejabberd-23.01; ejabberdctl sets
// ERL_LIBS to that directory).
func ejabberdLibs() (string, error) {
	m, _ := filepath.Glob("/usr/lib/*/ejabberd-[0-9]*")
	if len(m) == 0 {
		return "", fmt.Errorf("xmpptest: no /usr/lib/*/ejabberd-*: install the ejabberd package (scripts/test does)")
	}
	return filepath.Dir(m[0]), nil
}

// Ejabberd is a running ejabberd.
type Ejabberd struct {
	Dir    string // config, spool, certificates and logs
	Domain string // the host: "localhost"
	// Port accepts STARTTLS (and plaintext); DirectTLSPort accepts
	// direct TLS (XEP-0368).
	Port, DirectTLSPort int
	// ProxyJID and ProxyPort are the SOCKS5 bytestreams proxy
	// (mod_proxy65).
	ProxyJID  string
	ProxyPort int
	// CAFile is the PEM certificate of the CA that signed the server's
	// certificate (for "localhost", "proxy.localhost" and 127.0.0.1).
	CAFile string
	// Node is the Erlang node name, DistPort its distribution port.
	Node     string
	DistPort int

	libs   string
	cookie string
	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
}

// StartEjabberd starts an ejabberd for t and stops it and removes its
// files in t.Cleanup. A missing ejabberd fails the test.
func StartEjabberd(t testing.TB) *Ejabberd {
	t.Helper()
	s, err := NewEjabberd()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// NewEjabberd starts an ejabberd; Close stops it and removes its files.
func NewEjabberd() (*Ejabberd, error) {
	if _, err := exec.LookPath(ErlPath); err != nil {
		return nil, fmt.Errorf("xmpptest: %s not on PATH: install the ejabberd package (scripts/test does): %w", ErlPath, err)
	}
	libs, err := ejabberdLibs()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "xmpptest-ejabberd-")
	if err != nil {
		return nil, fmt.Errorf("xmpptest: %w", err)
	}
	id := make([]byte, 8)
	cookie := make([]byte, 16)
	_, _ = rand.Read(id)
	_, _ = rand.Read(cookie)
	s := &Ejabberd{Dir: dir, Domain: "localhost", ProxyJID: "proxy.localhost",
		CAFile: filepath.Join(dir, "ca.pem"),
		Node:   "xmpptest-" + hex.EncodeToString(id) + "@127.0.0.1",
		libs:   libs, cookie: hex.EncodeToString(cookie)}
	fail := func(err error) (*Ejabberd, error) {
		s.Close()
		return nil, err
	}
	for _, d := range []string{"spool", "log", "certs"} {
		if err := os.MkdirAll(s.path(d), 0o700); err != nil {
			return fail(fmt.Errorf("xmpptest: %w", err))
		}
	}
	if err := writeCerts(s.CAFile, s.path("certs", "server.crt"), s.path("certs", "server.key"),
		[]string{s.Domain, s.ProxyJID}); err != nil {
		return fail(fmt.Errorf("xmpptest: certificates: %w", err))
	}
	for attempt := 1; ; attempt++ {
		ports, err := freePorts(4)
		if err != nil {
			return fail(err)
		}
		s.Port, s.DirectTLSPort, s.ProxyPort, s.DistPort = ports[0], ports[1], ports[2], ports[3]
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
		// The first start made a Mnesia schema naming these ports'
		// node: start afresh.
		_ = os.RemoveAll(s.path("spool"))
		_ = os.MkdirAll(s.path("spool"), 0o700)
	}
}

func (s *Ejabberd) path(elem ...string) string {
	return filepath.Join(append([]string{s.Dir}, elem...)...)
}

// ConfigFile is the path of the server's config.
func (s *Ejabberd) ConfigFile() string { return s.path("ejabberd.yml") }

// LogFile is the server's console output (its log lines, and the Erlang
// runtime's own errors).
func (s *Ejabberd) LogFile() string { return s.path("log", "console.log") }

// Addr is the STARTTLS/plaintext client address "127.0.0.1:port".
func (s *Ejabberd) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)) }

// DirectTLSAddr is the direct TLS client address.
func (s *Ejabberd) DirectTLSAddr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.DirectTLSPort))
}

// JID returns "user@domain".
func (s *Ejabberd) JID(user string) string { return user + "@" + s.Domain }

// TLSConfig returns a client TLS config that trusts only the server's
// test CA, for the server's domain.
func (s *Ejabberd) TLSConfig() (*tls.Config, error) {
	b, err := os.ReadFile(s.CAFile)
	if err != nil {
		return nil, fmt.Errorf("xmpptest: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("xmpptest: no certificate in %s", s.CAFile)
	}
	return &tls.Config{RootCAs: pool, ServerName: s.Domain, MinVersion: tls.VersionTLS12}, nil
}

// writeConfig writes ejabberd.yml: no shapers (Debian's
// /etc/ejabberd/ejabberd.yml limits clients to 3000 B/s), no ACME, no
// s2s, Mnesia storage, and every command allowed to ejabberd_ctl (which
// needs the node's cookie). ejabberd warns that the certificate is
// "signed by unknown CA" (the test's; listed, it is called invalid for
// being self-signed).
func (s *Ejabberd) writeConfig() error {
	q := strconv.Quote
	cfg := fmt.Sprintf(`# written by xmpptest
hosts: [%s]
loglevel: info
certfiles: [%s, %s]
acme:
  auto: false
auth_method: internal
auth_password_format: plain
s2s_access: none
listen:
  - port: %d
    ip: "127.0.0.1"
    module: ejabberd_c2s
    starttls: true
    max_stanza_size: 262144
  - port: %d
    ip: "127.0.0.1"
    module: ejabberd_c2s
    tls: true
    max_stanza_size: 262144
api_permissions:
  "console commands":
    from: [ejabberd_ctl]
    who: all
    what: "*"
modules:
  mod_disco: {}
  mod_caps: {}
  mod_admin_extra: {}
  mod_ping: {}
  mod_roster: {}
  mod_carboncopy: {}
  mod_stream_mgmt: {}
  mod_proxy65:
    host: %s
    ip: "127.0.0.1"
    port: %d
    hostname: "127.0.0.1"
`, q(s.Domain), q(s.path("certs", "server.crt")), q(s.path("certs", "server.key")),
		s.Port, s.DirectTLSPort, q(s.ProxyJID), s.ProxyPort)
	if err := os.WriteFile(s.ConfigFile(), []byte(cfg), 0o600); err != nil {
		return fmt.Errorf("xmpptest: %w", err)
	}
	// Names from this file only: the runtime then starts no
	// inet_gethost helpers (whose zombies a container's init may never
	// reap).
	inetrc := fmt.Sprintf("{lookup, [file]}.\n{host, {127,0,0,1}, [%s, %s]}.\n", q(s.Domain), q(s.ProxyJID))
	if err := os.WriteFile(s.path("inetrc"), []byte(inetrc), 0o600); err != nil {
		return fmt.Errorf("xmpptest: %w", err)
	}
	return nil
}

// erl returns an erl command with the node's cookie, its distribution
// port instead of epmd, and the environment ejabberdctl would set, with
// HOME in the server's directory (erl may write a cookie file there).
func (s *Ejabberd) erl(ctx context.Context, args ...string) *exec.Cmd {
	base := []string{"-setcookie", s.cookie, "-noinput", "-start_epmd", "false",
		"-erl_epmd_port", strconv.Itoa(s.DistPort)}
	cmd := exec.CommandContext(ctx, ErlPath, append(base, args...)...)
	cmd.Dir = s.Dir
	cmd.Env = append(os.Environ(),
		"HOME="+s.Dir,
		"ERL_LIBS="+s.libs,
		"EJABBERD_CONFIG_PATH="+s.ConfigFile(),
		"EJABBERD_LOG_PATH="+s.path("log", "ejabberd.log"),
		"ERL_CRASH_DUMP="+s.path("log", "erl_crash.dump"),
		"ERL_CRASH_DUMP_BYTES=0",
		"ERL_INETRC="+s.path("inetrc"),
		"ERL_FLAGS=", "ERL_AFLAGS=", "ERL_ZFLAGS=")
	return cmd
}

// Register creates an account (the server must be running), as
// `ejabberdctl register USER HOST PW` does.
func (s *Ejabberd) Register(user, password string) error {
	_, err := s.Ctl("register", user, s.Domain, password)
	return err
}

// Ctl runs an ejabberdctl command against the server's node and returns
// its output.
func (s *Ejabberd) Ctl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id := make([]byte, 6)
	_, _ = rand.Read(id)
	cmd := s.erl(ctx, append([]string{"-name", "xmpptest-ctl-" + hex.EncodeToString(id) + "@127.0.0.1",
		"-hidden", "-dist_listen", "false", "-s", "ejabberd_ctl", "-extra", s.Node}, args...)...)
	cmd.WaitDelay = time.Second
	dieWithParent(cmd)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("xmpptest: ejabberdctl %s: %w\n%s", args[0], err, out)
	}
	return string(out), nil
}

// Restart starts the server if it is stopped (same ports, same node,
// same spool: accounts and rosters survive).
func (s *Ejabberd) Restart() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return fmt.Errorf("xmpptest: ejabberd already running")
	}
	lf, err := os.OpenFile(s.LogFile(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("xmpptest: %w", err)
	}
	var off int64
	if fi, err := lf.Stat(); err == nil {
		off = fi.Size()
	}
	cmd := s.erl(context.Background(), "-name", s.Node,
		"-kernel", "inet_dist_use_interface", "{127,0,0,1}",
		"-mnesia", "dir", strconv.Quote(s.path("spool")),
		"-s", "ejabberd")
	cmd.Stdout, cmd.Stderr = lf, lf
	dieWithParent(cmd)
	err = cmd.Start()
	lf.Close()
	if err != nil {
		return fmt.Errorf("xmpptest: start ejabberd: %w", err)
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
		if strings.Contains(log, "eaddrinuse") || strings.Contains(log, "already in use") {
			return fmt.Errorf("%w: %s", errPortInUse, log)
		}
		return fmt.Errorf("xmpptest: ejabberd not ready: %w\nejabberd log:\n%s", err, log)
	}
	return nil
}

// waitReady waits for the client and proxy ports: ejabberd opens its
// listeners once every module has started.
func (s *Ejabberd) waitReady(done <-chan struct{}) error {
	deadline := time.Now().Add(ReadyTimeout)
	for {
		select {
		case <-done:
			return fmt.Errorf("ejabberd exited")
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

func (s *Ejabberd) probe() error {
	for _, p := range []int{s.Port, s.DirectTLSPort, s.ProxyPort} {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), time.Second)
		if err != nil {
			return err
		}
		c.Close()
	}
	return nil
}

func (s *Ejabberd) logSince(off int64) string {
	b, err := os.ReadFile(s.LogFile())
	if err != nil || off > int64(len(b)) {
		return ""
	}
	return string(b[off:])
}

// Log returns the whole console log (for failure messages).
func (s *Ejabberd) Log() string { return s.logSince(0) }

// Pid is the server's process id (beam.smp), 0 when stopped.
func (s *Ejabberd) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Stop stops the server: TERM (the Erlang runtime stops ejabberd
// cleanly, ~2 s), then KILL after 10 s. Its helpers (erl_child_setup,
// inet_gethost) end when it does. Idempotent; Restart starts it again.
func (s *Ejabberd) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

func (s *Ejabberd) stopLocked() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGCONT)
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd, s.done = nil, nil
}

// Close stops the server and removes its directory.
func (s *Ejabberd) Close() {
	s.Stop()
	_ = os.RemoveAll(s.Dir)
}
