package e2e

import (
	"context"
	"os/exec"
	"strings"
	"sync"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/git-remote-daemon/git-remote-daemon/internal/netnstest"
)

// scriptNets holds each running script's network, built by its first
// netns command and deleted at its end.
var scriptNets = struct {
	sync.Mutex
	net map[*testscript.TestScript]*netnstest.Net
	ns  map[*testscript.TestScript]string // the namespace for the daemon `netns daemon` starts
}{net: map[*testscript.TestScript]*netnstest.Net{}, ns: map[*testscript.TestScript]string{}}

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
