package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/git-remote-daemon/git-remote-daemon/internal/netnstest"
)

// scriptNets holds each running script's network, built by its first
// netns command and deleted at its end.
var scriptNets = struct {
	sync.Mutex
	net      map[*testscript.TestScript]*netnstest.Net
	ns       map[*testscript.TestScript]string // the namespace for the daemon `netns daemon` starts
	prefixes map[string][]string               // by script name: the namespace prefixes it used
}{net: map[*testscript.TestScript]*netnstest.Net{}, ns: map[*testscript.TestScript]string{}, prefixes: map[string][]string{}}

func netOf(ts *testscript.TestScript) *netnstest.Net {
	scriptNets.Lock()
	defer scriptNets.Unlock()
	if n := scriptNets.net[ts]; n != nil {
		return n
	}
	n, err := netnstest.Open(context.Background())
	if err != nil {
		ts.Fatalf("netns: %v", err)
	}
	scriptNets.net[ts] = n
	scriptNets.prefixes[ts.Name()] = append(scriptNets.prefixes[ts.Name()], n.Prefix())
	// Deferred before any daemon the script starts in it: runs after
	// their kills.
	ts.Defer(func() {
		scriptNets.Lock()
		delete(scriptNets.net, ts)
		scriptNets.Unlock()
		if err := n.Close(); err != nil {
			ts.Logf("netns: %v", err)
		}
	})
	return n
}

// cmdNetns builds and changes the script's network of Linux network
// namespaces (internal/netnstest: root, ip, nft, conntrack; scripts
// netns_*.txtar start with `[!linux] skip`) and runs commands in it:
//
//	netns public HOST...           hosts on the public network (192.0.2.0/24)
//	netns nat NAT [random]         a NAT router on it (masquerade [random], a home router's firewall)
//	netns behind NAT HOST...       hosts behind NAT
//	netns exec HOST PROG ARGS...   run PROG in HOST's network, like exec (stdout, stderr, !)
//	netns exec HOST PROG ARGS... & the same in the background, killed at the script's end
//	netns daemon HOST ARGS...      `daemon ARGS...` with the daemon in HOST's network
//	netns flush NAT                NAT forgets its mappings (conntrack -F)
//	netns down|up NAT              unplug NAT from the public network (it forgets its mappings), plug it back
//	netns move HOST NAT|public     re-attach HOST behind NAT or on the public network, with a new address
//
// Each host and NAT sets $<NAME>_IP (upper case) to its address: a host's
// own (private behind a NAT), a NAT's public one.
func cmdNetns(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) == 0 {
		ts.Fatalf("usage: netns public|nat|behind|exec|daemon|flush|down|up|move ...")
	}
	n := netOf(ts)
	ctx := context.Background()
	verb, args := args[0], args[1:]
	if neg && verb != "exec" && verb != "daemon" {
		ts.Fatalf("netns %s cannot be negated", verb)
	}
	host := func(name string) *netnstest.Host {
		h := n.Host(name)
		if h == nil {
			ts.Fatalf("netns %s: no host %q", verb, name)
		}
		return h
	}
	nat := func(name string) *netnstest.NAT {
		r := n.NAT(name)
		if r == nil {
			ts.Fatalf("netns %s: no NAT %q", verb, name)
		}
		return r
	}
	setIP := func(name, ip string) { ts.Setenv(strings.ToUpper(name)+"_IP", ip) }
	switch verb {
	case "public":
		for _, name := range args {
			h, err := n.PublicHost(ctx, name)
			ts.Check(err)
			setIP(name, h.IP().String())
		}
	case "nat":
		if len(args) < 1 || len(args) > 2 || len(args) == 2 && args[1] != "random" {
			ts.Fatalf("usage: netns nat NAT [random]")
		}
		r, err := n.NewNAT(ctx, args[0], netnstest.NATOptions{Random: len(args) == 2})
		ts.Check(err)
		setIP(args[0], r.Public.String())
	case "behind":
		if len(args) < 2 {
			ts.Fatalf("usage: netns behind NAT HOST...")
		}
		r := nat(args[0])
		for _, name := range args[1:] {
			h, err := r.Host(ctx, name)
			ts.Check(err)
			setIP(name, h.IP().String())
		}
	case "exec":
		if len(args) < 2 {
			ts.Fatalf("usage: netns exec HOST PROG [ARGS...]")
		}
		h := host(args[0])
		if args[len(args)-1] == "&" {
			// In the background until the script ends (killed by pid).
			if neg || len(args) < 3 {
				ts.Fatalf("usage: netns exec HOST PROG [ARGS...] & (no negation)")
			}
			c := h.Command(ctx, args[1], args[2:len(args)-1]...)
			c.Dir, c.Env = ts.MkAbs("."), append(env(ts), "PWD="+ts.MkAbs("."))
			ts.Check(n.Start(c))
			return
		}
		err := ts.Exec("ip", append([]string{"netns", "exec", h.NS}, args[1:]...)...)
		switch {
		case err != nil && !neg:
			ts.Fatalf("%v", err)
		case err == nil && neg:
			ts.Fatalf("unexpected command success")
		}
	case "daemon":
		if len(args) < 2 {
			ts.Fatalf("usage: netns daemon HOST [-n NAME] start ...")
		}
		h := host(args[0])
		scriptNets.Lock()
		scriptNets.ns[ts] = h.NS
		scriptNets.Unlock()
		defer func() {
			scriptNets.Lock()
			delete(scriptNets.ns, ts)
			scriptNets.Unlock()
		}()
		cmdDaemon(ts, neg, args[1:])
	case "flush", "down", "up":
		if len(args) != 1 {
			ts.Fatalf("usage: netns %s NAT", verb)
		}
		r := nat(args[0])
		op := map[string]func(context.Context) error{"flush": r.Flush, "down": r.Down, "up": r.Up}[verb]
		ts.Check(op(ctx))
	case "move":
		if len(args) != 2 {
			ts.Fatalf("usage: netns move HOST NAT|public")
		}
		h := host(args[0])
		var to *netnstest.NAT
		if args[1] != "public" {
			to = nat(args[1])
		}
		ts.Check(h.MoveTo(ctx, to))
		setIP(args[0], h.IP().String())
	default:
		ts.Fatalf("netns: unknown verb %q", verb)
	}
}

// inNetns makes a daemon that `netns daemon HOST` starts run in HOST's
// network; other daemons are left as they are.
func inNetns(ts *testscript.TestScript, cmd *exec.Cmd) {
	scriptNets.Lock()
	ns := scriptNets.ns[ts]
	scriptNets.Unlock()
	if ns != "" {
		ts.Check(netnstest.Wrap(ns, cmd))
	}
}

// TestNetnsCommand runs the netns command in small scripts, passing and
// failing ones, and checks that each leaves no namespace and no process
// behind.
func TestNetnsCommand(t *testing.T) {
	t.Parallel()
	const build = "netns public bob\nnetns nat home random\nnetns behind home alice\n"
	for _, c := range []struct {
		name, script, fails string
	}{
		{"addresses", build + "netns exec alice ip -4 -o addr show dev eth0\nstdout 'inet '$ALICE_IP'/24'\n" +
			"netns exec bob ip -4 -o addr show dev eth0\nstdout 'inet '$BOB_IP'/24'\n" +
			"netns exec bob ip route get $HOME_IP\n! netns exec bob ip route get $ALICE_IP\nstderr unreachable\n", ""},
		{"move", build + "netns nat cafe\nnetns move alice cafe\nnetns exec alice ip -4 -o addr show dev eth0\nstdout 'inet 10\\.2\\.0\\.2/24'\n" +
			"netns move alice public\nnetns exec alice ip route get $BOB_IP\nstdout 'dev eth0 src '$ALICE_IP\nnetns down cafe\nnetns up cafe\nnetns flush home\n", ""},
		{"background", build + "netns exec alice sleep 601 &\nnetns exec bob sleep 601 &\n", ""},
		{"fails-after-building", build + "netns exec alice sleep 602 &\nnetns exec alice false\n", "exit status 1"},
		{"unknown-host", build + "netns exec carol true\n", `no host "carol"`},
		{"taken", build + "netns public alice\n", `"alice" exists`},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, c.name+".txtar"), []byte(c.script), 0o644); err != nil {
				t.Fatal(err)
			}
			r := &recordT{TB: t}
			testscript.RunT(r, testscript.Params{Dir: dir, Setup: setup, Cmds: commands(), RequireExplicitExec: true})
			log := r.log.String()
			switch {
			case c.fails == "" && r.Failed():
				t.Errorf("failed:\n%s", log)
			case c.fails != "" && !r.Failed():
				t.Errorf("passed, want a failure with %q:\n%s", c.fails, log)
			case c.fails != "" && !strings.Contains(log, c.fails):
				t.Errorf("failure does not say %q:\n%s", c.fails, log)
			}
			scriptNets.Lock()
			prefixes := scriptNets.prefixes[c.name]
			scriptNets.Unlock()
			if len(prefixes) != 1 {
				t.Fatalf("script %s built %d networks, want 1", c.name, len(prefixes))
			}
			for ns := range netnsList(t) {
				if strings.HasPrefix(ns, prefixes[0]) {
					t.Errorf("namespace %s left behind", ns)
				}
			}
			if sleep := regexp.MustCompile(`sleep \d+`).FindString(c.script); sleep != "" {
				if out, _ := exec.Command("pgrep", "-f", "^"+sleep+"$").Output(); len(out) > 0 {
					t.Errorf("%s left running: pids %s", sleep, strings.Fields(string(out)))
				}
			}
		})
	}
}

func netnsList(t *testing.T) map[string]bool {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]bool{}
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			m[f[0]] = true
		}
	}
	return m
}
