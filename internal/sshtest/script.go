package sshtest

import (
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// servers holds the server of each running script.
var servers sync.Map // *testscript.TestScript -> *Server

// Cmd is a testscript command driving one Server per script:
//
//	sshd start | stop | restart | kill-connections | pause | resume | new-host-key | trust-host-key | log | wait-idle
//
// `sshd start` starts a Server (stopped and removed at the end of the
// script via ts.Defer) and sets in the script's environment SSHD_PORT,
// SSHD_USER, SSHD_URL (ssh://user@127.0.0.1:port, append an absolute
// path), SSHD_DIR, SSHD_SHELLRC (see Server.ShellRC) and GIT_SSH_COMMAND (the Server's SSHCommand).
// `sshd log` prints sshd's log to the command's stdout. Other commands
// need a prior `sshd start`. Negation is not supported.
//
// Register it with testscript.Params{Cmds: map[string]func(...){"sshd": sshtest.Cmd}}.
func Cmd(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! sshd")
	}
	if len(args) != 1 {
		ts.Fatalf("usage: sshd start|stop|restart|kill-connections|pause|resume|new-host-key|trust-host-key|log|wait-idle")
	}
	if args[0] == "start" {
		if _, ok := servers.Load(ts); ok {
			ts.Fatalf("sshd start: already started in this script")
		}
		s, err := start()
		if err != nil {
			ts.Fatalf("%v", err)
		}
		servers.Store(ts, s)
		ts.Defer(func() {
			servers.Delete(ts)
			s.close()
		})
		ts.Setenv("SSHD_PORT", strconv.Itoa(s.Port))
		ts.Setenv("SSHD_USER", s.User)
		ts.Setenv("SSHD_URL", fmt.Sprintf("ssh://%s@127.0.0.1:%d", s.User, s.Port))
		ts.Setenv("SSHD_DIR", s.Dir)
		ts.Setenv("SSHD_SHELLRC", s.ShellRC())
		ts.Setenv("GIT_SSH_COMMAND", s.SSHCommand)
		ts.Logf("sshd: listening on 127.0.0.1:%d (pid %d), dir %s", s.Port, s.Pid(), s.Dir)
		return
	}
	v, ok := servers.Load(ts)
	if !ok {
		ts.Fatalf("sshd %s: no server: run `sshd start` first", args[0])
	}
	s := v.(*Server)
	var err error
	switch args[0] {
	case "stop":
		s.Stop()
	case "restart":
		err = s.restart()
	case "kill-connections":
		s.KillConnections()
	case "pause":
		s.Pause()
	case "resume":
		s.Resume()
	case "new-host-key":
		err = s.newHostKey()
	case "trust-host-key":
		err = s.trustHostKey()
	case "log":
		_, err = fmt.Fprintln(ts.Stdout(), s.Log())
	case "wait-idle":
		// every connection closed: nothing runs below the listener
		deadline := time.Now().Add(ReadyTimeout)
		for len(s.Pids()) > 1 {
			if time.Now().After(deadline) {
				ts.Fatalf("sshd wait-idle: %d processes still run below the listener after %s", len(s.Pids())-1, ReadyTimeout)
			}
			time.Sleep(20 * time.Millisecond)
		}
	default:
		ts.Fatalf("sshd: unknown subcommand %q", args[0])
	}
	if err != nil {
		ts.Fatalf("sshd %s: %v", args[0], err)
	}
}
