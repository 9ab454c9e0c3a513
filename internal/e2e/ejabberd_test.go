package e2e

import (
	"sync"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/git-remote-daemon/git-remote-daemon/internal/xmpptest"
)

// ejabberds holds each script's ejabberd.
var ejabberds sync.Map // *testscript.TestScript -> *xmpptest.Ejabberd

// cmdEjabberd runs a throwaway ejabberd for a script
// (internal/xmpptest), as cmdProsody runs a Prosody:
//
//	ejabberd start              start it; sets XMPP_SERVER (127.0.0.1:port, STARTTLS),
//	                            XMPP_DIRECT (direct TLS), XMPP_CA (its CA's PEM file)
//	                            and XMPP_DOMAIN (localhost)
//	ejabberd register USER PW   create the account USER@localhost
//	ejabberd stop|restart       stop it, start it again (same port, same accounts)
//	ejabberd log                print its log
//
// It is stopped and its files removed when the script ends.
func cmdEjabberd(ts *testscript.TestScript, neg bool, args []string) {
	const usage = "usage: ejabberd start|register USER PW|stop|restart|log"
	if neg {
		ts.Fatalf("unsupported: ! ejabberd")
	}
	if len(args) == 0 {
		ts.Fatalf(usage)
	}
	if args[0] == "start" {
		if _, ok := ejabberds.Load(ts); ok {
			ts.Fatalf("ejabberd start: already started in this script")
		}
		s, err := xmpptest.NewEjabberd()
		if err != nil {
			ts.Fatalf("%v", err)
		}
		ejabberds.Store(ts, s)
		ts.Defer(func() {
			ejabberds.Delete(ts)
			s.Close()
		})
		ts.Setenv("XMPP_SERVER", s.Addr())
		ts.Setenv("XMPP_DIRECT", s.DirectTLSAddr())
		ts.Setenv("XMPP_CA", s.CAFile)
		ts.Setenv("XMPP_DOMAIN", s.Domain)
		ts.Logf("ejabberd: c2s on %s, direct TLS on %s, node %s, dir %s", s.Addr(), s.DirectTLSAddr(), s.Node, s.Dir)
		return
	}
	v, ok := ejabberds.Load(ts)
	if !ok {
		ts.Fatalf("ejabberd %s: no server: run `ejabberd start` first", args[0])
	}
	s := v.(*xmpptest.Ejabberd)
	switch {
	case args[0] == "register" && len(args) == 3:
		ts.Check(s.Register(args[1], args[2]))
	case args[0] == "stop" && len(args) == 1:
		s.Stop()
	case args[0] == "restart" && len(args) == 1:
		ts.Check(s.Restart())
	case args[0] == "log" && len(args) == 1:
		ts.Logf("%s", s.Log())
	default:
		ts.Fatalf(usage)
	}
}
