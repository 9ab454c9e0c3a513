package ssh

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/git-remote-daemon/git-remote-daemon/internal/gitcfg"
	"github.com/git-remote-daemon/git-remote-daemon/internal/gitexec"
)

// sshCommand is the ssh program git would run for a remote (connect.c):
// GIT_SSH_COMMAND, else core.sshCommand (both run by the shell), else
// GIT_SSH (a program), else "ssh"; its variant decides which options it
// understands (GIT_SSH_VARIANT or ssh.variant override the guess).
type sshCommand struct {
	shell   string // a command line for sh -c
	program string // a program path
	variant string // ssh, plink, putty, tortoiseplink, simple
}

func resolveSSH(cfg *gitcfg.Config) sshCommand {
	var s sshCommand
	if v := os.Getenv("GIT_SSH_COMMAND"); v != "" {
		s.shell = v
	} else if v, ok := cfg.Get("core.sshcommand"); ok && v != "" {
		s.shell = v
	} else if v := os.Getenv("GIT_SSH"); v != "" {
		s.program = v
	} else {
		s.program = "ssh"
	}
	s.variant = os.Getenv("GIT_SSH_VARIANT")
	if s.variant == "" {
		s.variant, _ = cfg.Get("ssh.variant")
	}
	if s.variant == "" || s.variant == "auto" {
		s.variant = guessVariant(s)
	}
	return s
}

// guessVariant names the variant from the program's name. git asks an
// unknown program `-G` to tell OpenSSH from others; OpenSSH-compatible
// wrappers being the common case, an unknown name is taken for OpenSSH.
func guessVariant(s sshCommand) string {
	prog := s.program
	if s.shell != "" {
		for _, w := range strings.Fields(s.shell) {
			if !strings.Contains(w, "=") { // skip leading VAR=value
				prog = w
				break
			}
		}
	}
	name := strings.TrimSuffix(strings.ToLower(filepath.Base(prog)), ".exe")
	switch name {
	case "plink", "putty", "tortoiseplink":
		return name
	}
	return "ssh"
}

// openSSH reports whether the command takes OpenSSH's options, which the
// shared connection (ControlMaster) and keepalives need.
func (s sshCommand) openSSH() bool { return s.variant == "ssh" }

// args builds the arguments for a session to t running remoteCmd (empty:
// none), with OpenSSH options opts when the variant takes them.
func (s sshCommand) args(t target, opts []string, remoteCmd string) ([]string, error) {
	var a []string
	switch s.variant {
	case "ssh":
		a = append(a, opts...)
		if t.Port != 0 {
			a = append(a, "-p", strconv.Itoa(t.Port))
		}
	case "plink", "putty", "tortoiseplink":
		if s.variant == "tortoiseplink" || s.variant == "plink" {
			a = append(a, "-batch")
		}
		if t.Port != 0 {
			a = append(a, "-P", strconv.Itoa(t.Port))
		}
	case "simple":
		if t.Port != 0 {
			return nil, fmt.Errorf("ssh variant 'simple' does not support setting a port")
		}
	default:
		return nil, fmt.Errorf("unknown ssh variant %q", s.variant)
	}
	a = append(a, t.dest())
	if remoteCmd != "" {
		a = append(a, remoteCmd)
	}
	return a, nil
}

// cmd returns the command running the ssh program with args, made by
// gitexec: in a process group of its own so that kill (below) also ends
// the ssh that a shell command started, and (on Linux) killed by the
// kernel should the daemon die without cleaning up (an ssh master would
// otherwise live on). It has no context: the connection ends it by kill.
func (s sshCommand) cmd(args ...string) *exec.Cmd {
	var c *exec.Cmd
	if s.shell != "" {
		// As git runs it, but with exec where that is safe, so the
		// kill-on-death below reaches ssh itself.
		line := s.shell + ` "$@"`
		if first, _, _ := strings.Cut(strings.TrimSpace(s.shell), " "); !strings.Contains(first, "=") &&
			!strings.ContainsAny(s.shell, ";&|()<>`$\\{}\n") {
			line = "exec " + line
		}
		c = gitexec.Program(context.Background(), "sh", append([]string{"-c", line, s.shell}, args...)...)
	} else {
		c = gitexec.Program(context.Background(), s.program, args...)
	}
	return c
}

// kill ends a command started by cmd, with its whole process group.
func kill(c *exec.Cmd) { _ = gitexec.Kill(c) }

// commandLine renders the ssh program and extra options as a value for
// GIT_SSH_COMMAND, for the git commands that should share our connection.
func (s sshCommand) commandLine(extra ...string) string {
	line := s.shell
	if line == "" {
		line = shellQuote(s.program)
	}
	for _, e := range extra {
		line += " " + shellQuote(e)
	}
	return line
}

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:@%+,", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
