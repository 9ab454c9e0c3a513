package xmpptest

import (
	"crypto/tls"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestStartStop(t *testing.T) {
	s := Start(t)
	if err := s.Register("alice", "pw"); err != nil {
		t.Fatal(err)
	}
	// Direct TLS verifies against the test CA.
	cfg, err := s.TLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", s.DirectTLSAddr(), cfg)
	if err != nil {
		t.Fatalf("direct TLS: %v\n%s", err, s.Log())
	}
	c.Close()
	if log := s.Log(); !strings.Contains(log, "proxy65' on [127.0.0.1]:"+strconv.Itoa(s.ProxyPort)) {
		t.Errorf("proxy65 not on its port %d:\n%s", s.ProxyPort, log)
	}
	s.Stop()
	if _, err := net.DialTimeout("tcp", s.Addr(), time.Second); err == nil {
		t.Fatal("port still accepts after Stop")
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	dir := s.Dir
	s.Close()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("dir left behind: %v", err)
	}
}
