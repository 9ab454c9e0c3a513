package e2e

import (
	"sync"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/git-remote-daemon/git-remote-daemon/internal/xmpptest"
)

// prosodies holds each script's Prosody.
var prosodies sync.Map // *testscript.TestScript -> *xmpptest.Server

// cmdProsody runs a throwaway Prosody for a script (internal/xmpptest):
//
//	prosody start              start it; sets XMPP_SERVER (127.0.0.1:port, STARTTLS),
//	                           XMPP_DIRECT (direct TLS), XMPP_CA (its CA's PEM file)
//	                           and XMPP_DOMAIN (localhost)
//	prosody register USER PW   create the account USER@localhost
//	prosody stop|restart       stop it, start it again (same port, same accounts)
//
// It is stopped and its files removed when the script ends.
func cmdProsody(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! prosody")
	}
	if len(args) == 0 {
		ts.Fatalf("usage: prosody start|register USER PW|stop|restart")
	}
	if args[0] == "start" {
		if _, ok := prosodies.Load(ts); ok {
			ts.Fatalf("prosody start: already started in this script")
		}
		s, err := xmpptest.New()
		if err != nil {
			ts.Fatalf("%v", err)
		}
		prosodies.Store(ts, s)
		ts.Defer(func() {
			prosodies.Delete(ts)
			s.Close()
		})
		ts.Setenv("XMPP_SERVER", s.Addr())
		ts.Setenv("XMPP_DIRECT", s.DirectTLSAddr())
		ts.Setenv("XMPP_CA", s.CAFile)
		ts.Setenv("XMPP_DOMAIN", s.Domain)
		ts.Logf("prosody: c2s on %s, direct TLS on %s, dir %s", s.Addr(), s.DirectTLSAddr(), s.Dir)
		return
	}
	v, ok := prosodies.Load(ts)
	if !ok {
		ts.Fatalf("prosody %s: no server: run `prosody start` first", args[0])
	}
	s := v.(*xmpptest.Server)
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
		ts.Fatalf("usage: prosody start|register USER PW|stop|restart|log")
	}
}
