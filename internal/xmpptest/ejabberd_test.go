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

func TestEjabberdStartStop(t *testing.T) {
	t0 := time.Now()
	s := StartEjabberd(t)
	t.Logf("ejabberd started in %v", time.Since(t0))
	t0 = time.Now()
	if err := s.Register("alice", "pw"); err != nil {
		t.Fatal(err)
	}
	t.Logf("register: %v", time.Since(t0))
	if err := s.Register("alice", "pw"); err == nil {
		t.Error("registering alice twice succeeded")
	}
	cfg, err := s.TLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", s.DirectTLSAddr(), cfg)
	if err != nil {
		t.Fatalf("direct TLS: %v\n%s", err, s.Log())
	}
	c.Close()
	if log := s.Log(); !strings.Contains(log, "127.0.0.1:"+strconv.Itoa(s.ProxyPort)+" for mod_proxy65_stream") {
		t.Errorf("proxy65 not on its port %d:\n%s", s.ProxyPort, log)
	}
	if log := s.Log(); strings.Contains(log, "[error]") || strings.Contains(log, "[critical]") {
		t.Errorf("ejabberd complained:\n%s", log)
	}
	procs := descendants(s.Pid())
	if len(procs) < 2 {
		t.Errorf("processes of the server: %v", procs)
	}
	t0 = time.Now()
	s.Stop()
	t.Logf("stop: %v", time.Since(t0))
	if _, err := net.DialTimeout("tcp", s.Addr(), time.Second); err == nil {
		t.Fatal("port still accepts after Stop")
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	out, err := s.Ctl("registered_users", s.Domain)
	if err != nil || strings.TrimSpace(out) != "alice" {
		t.Fatalf("accounts after restart: %q, %v", out, err)
	}
	procs = append(procs, descendants(s.Pid())...)
	dir := s.Dir
	s.Close()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("dir left behind: %v", err)
	}
	time.Sleep(200 * time.Millisecond)
	for _, p := range procs {
		if st, ok := procState(p); ok && st != "Z" {
			b, _ := os.ReadFile("/proc/" + strconv.Itoa(p) + "/cmdline")
			t.Errorf("process %d left behind (%s): %q", p, st, b)
		}
	}
}

// descendants returns pid and its descendants (from /proc).
func descendants(pid int) []int {
	parent := map[int]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) > 1 {
			pp, _ := strconv.Atoi(f[1])
			parent[p] = pp
		}
	}
	out := []int{pid}
	for changed := true; changed; {
		changed = false
		for p, pp := range parent {
			if contains(out, pp) && !contains(out, p) {
				out = append(out, p)
				changed = true
			}
		}
	}
	return out
}

// procState returns a process's state letter (Z: a zombie, gone but for
// its parent's wait).
func procState(pid int) (string, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", false
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) == 0 {
		return "", false
	}
	return f[0], true
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
