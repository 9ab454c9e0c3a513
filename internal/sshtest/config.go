package sshtest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// SSHDPath is the sshd binary. sshd re-executes itself for every
// connection, so it must be started by absolute path.
var SSHDPath = "/usr/sbin/sshd"

// File names inside Server.Dir.
const (
	hostKeyName    = "host_ed25519"
	clientKeyName  = "id_ed25519"
	authKeysName   = "authorized_keys"
	sshdConfigName = "sshd_config"
	sshConfigName  = "ssh_config"
	knownHostsName = "known_hosts"
	// readyKnownHostsName holds the key sshd serves, for readiness logins.
	readyKnownHostsName = "ready_known_hosts"
	pidFileName         = "sshd.pid"
	// shellRCName is sourced by every remote bash (BASH_ENV): tests log
	// shell starts or slow them down there (see ShellRC).
	shellRCName = "shellrc"
	logName     = "sshd.log"
)

func (s *Server) path(name string) string { return filepath.Join(s.Dir, name) }

// checkTools reports a missing sshd, ssh or ssh-keygen. The package never
// installs anything: scripts/test does.
func checkTools() error {
	var missing []string
	if fi, err := os.Stat(SSHDPath); err != nil || fi.IsDir() {
		missing = append(missing, SSHDPath)
	}
	for _, p := range []string{"ssh", "ssh-keygen"} {
		if _, err := exec.LookPath(p); err != nil {
			missing = append(missing, p+" (not on PATH)")
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("sshtest: missing %s: install openssh-server and openssh-client (scripts/test does this)",
			strings.Join(missing, ", "))
	}
	return nil
}

// run runs a short helper program to completion with a timeout, returning
// its combined output in the error.
func run(timeout time.Duration, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out, nil
}

// keygen writes a fresh passphrase-less ed25519 key pair to path and
// path.pub, replacing any existing one.
func keygen(path, comment string) error {
	tmp := path + ".new"
	_ = os.Remove(tmp)
	_ = os.Remove(tmp + ".pub")
	if _, err := run(30*time.Second, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp+".pub", path+".pub"); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// writeKeys creates the host key, the client key and authorized_keys.
func (s *Server) writeKeys() error {
	if err := keygen(s.path(hostKeyName), "sshtest-host"); err != nil {
		return err
	}
	if err := keygen(s.path(clientKeyName), "sshtest-client"); err != nil {
		return err
	}
	pub, err := os.ReadFile(s.path(clientKeyName + ".pub"))
	if err != nil {
		return err
	}
	return os.WriteFile(s.path(authKeysName), pub, 0o600)
}

// writeSSHConfig writes the client config that SSHCommand points at. ssh
// takes ~ from the passwd entry, not $HOME, so every file is explicit and
// nothing of the user's ~/.ssh or agent is used.
func (s *Server) writeSSHConfig() error {
	cfg := fmt.Sprintf(`# written by sshtest
Host *
	IdentityFile %s
	IdentitiesOnly yes
	IdentityAgent none
	UserKnownHostsFile %s
	GlobalKnownHostsFile /dev/null
	StrictHostKeyChecking yes
	UpdateHostKeys no
	CheckHostIP no
	HashKnownHosts no
	BatchMode yes
	PreferredAuthentications publickey
	PasswordAuthentication no
	KbdInteractiveAuthentication no
	ForwardAgent no
	ForwardX11 no
	ControlMaster no
	ControlPath none
	LogLevel ERROR
`, quoteCfg(s.path(clientKeyName)), quoteCfg(s.path(knownHostsName)))
	if err := os.WriteFile(s.path(sshConfigName), []byte(cfg), 0o600); err != nil {
		return err
	}
	s.SSHCommand = "ssh -F " + shellQuote(s.path(sshConfigName))
	return nil
}

// writeKnownHosts records the current host key for [127.0.0.1]:Port in
// the clients' known_hosts.
func (s *Server) writeKnownHosts() error { return s.writeKnownHostsTo(knownHostsName) }

func (s *Server) writeKnownHostsTo(name string) error {
	pub, err := os.ReadFile(s.path(hostKeyName + ".pub"))
	if err != nil {
		return err
	}
	f := strings.Fields(string(pub))
	if len(f) < 2 {
		return fmt.Errorf("sshtest: malformed host public key %q", pub)
	}
	line := fmt.Sprintf("[127.0.0.1]:%d %s %s\n", s.Port, f[0], f[1])
	return os.WriteFile(s.path(name), []byte(line), 0o600)
}

// writeSSHDConfig writes sshd_config for the current Port and checks it
// with `sshd -t`.
//
// SetEnv SHLVL=1 keeps bash from sourcing the login user's ~/.bashrc for
// remote commands (Debian's bash does so only when SSH_CLIENT is set and
// the shell level is below 2). BASH_ENV names a file of Dir that every
// remote bash sources instead (empty unless a test writes it). Tests log in as root, whose ~/.bashrc on
// these machines runs `pyenv init`: its rehash lock, left behind by a
// session a test kills, makes every later login wait 60 s. What a remote
// shell prints before the banner is tested on purpose instead (noise in
// remote.<name>.daemonCommand).
func (s *Server) writeSSHDConfig() error {
	cfg := fmt.Sprintf(`# written by sshtest
ListenAddress 127.0.0.1
Port %d
HostKey %s
PidFile %s
AuthorizedKeysFile %s
StrictModes no
UsePAM no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
PermitUserEnvironment no
AcceptEnv GIT_PROTOCOL
SetEnv SHLVL=1 %s
MaxStartups 100
MaxSessions 100
UseDNS no
PrintMotd no
PrintLastLog no
X11Forwarding no
LogLevel INFO
`, s.Port, quoteCfg(s.path(hostKeyName)), quoteCfg(s.path(pidFileName)), quoteCfg(s.path(authKeysName)),
		quoteCfg("BASH_ENV="+s.ShellRC()))
	if f, err := os.OpenFile(s.ShellRC(), os.O_CREATE|os.O_WRONLY, 0o644); err != nil {
		return err
	} else if err := f.Close(); err != nil {
		return err
	}
	if err := os.WriteFile(s.path(sshdConfigName), []byte(cfg), 0o600); err != nil {
		return err
	}
	if err := ensurePrivsepDir(); err != nil {
		return err
	}
	out, err := exec.Command(SSHDPath, "-t", "-f", s.path(sshdConfigName)).CombinedOutput()
	if err != nil {
		return fmt.Errorf("sshtest: %s -t -f %s: %v\n%s", SSHDPath, s.path(sshdConfigName), err, out)
	}
	return nil
}

// quoteCfg quotes a path for ssh_config / sshd_config if needed.
func quoteCfg(p string) string {
	if strings.ContainsAny(p, " \t\"") {
		return strconv.Quote(p)
	}
	return p
}

// shellQuote quotes s for sh (GIT_SSH_COMMAND is run by a shell).
func shellQuote(s string) string {
	if s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+,:=@%", r))
	}) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// logSince returns the part of sshd's log after byte offset off.
func (s *Server) logSince(off int64) string {
	b, _ := os.ReadFile(s.path(logName))
	if off > int64(len(b)) {
		off = 0
	}
	return string(bytes.TrimSpace(b[off:]))
}

// ShellRC is the file every remote bash sources at its start (BASH_ENV),
// empty at first: a test appends to it to log each remote shell's start,
// or to make it slow as users' rc files (pyenv, nvm) make theirs.
func (s *Server) ShellRC() string { return s.path(shellRCName) }
