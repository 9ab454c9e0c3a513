package xmpp

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// Credential is a request to or an answer from git's credential helpers
// (git-credential(1), "INPUT/OUTPUT FORMAT"): "key=value" lines ended by
// a blank line or EOF.
type Credential struct {
	Protocol, Host, Username, Password string
}

// ErrNoPassword reports that no credential helper had a password.
var ErrNoPassword = errors.New("xmpp: no password from git credential")

// maxCredential caps what is read from git credential.
const maxCredential = 64 << 10

// Encode returns c in git's credential format. Values holding a newline
// or NUL are refused (git refuses them too).
func (c Credential) Encode() ([]byte, error) {
	var b bytes.Buffer
	for _, kv := range [][2]string{{"protocol", c.Protocol}, {"host", c.Host}, {"username", c.Username}, {"password", c.Password}} {
		if kv[1] == "" {
			continue
		}
		if strings.ContainsAny(kv[1], "\n\x00") {
			return nil, fmt.Errorf("xmpp: credential %s holds a newline or NUL", kv[0])
		}
		fmt.Fprintf(&b, "%s=%s\n", kv[0], kv[1])
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}

// ParseCredential reads git's credential format; unknown keys are
// ignored, as git does.
func ParseCredential(b []byte) (Credential, error) {
	if len(b) > maxCredential {
		return Credential{}, fmt.Errorf("xmpp: credential answer over %d bytes", maxCredential)
	}
	var c Credential
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), maxCredential)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSuffix(sc.Text(), "\r")
		if line == "" {
			break
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return Credential{}, fmt.Errorf("xmpp: credential line %d: no '='", n)
		}
		switch k {
		case "protocol":
			c.Protocol = v
		case "host":
			c.Host = v
		case "username":
			c.Username = v
		case "password":
			c.Password = v
		}
	}
	if err := sc.Err(); err != nil {
		return Credential{}, fmt.Errorf("xmpp: credential: %w", err)
	}
	return c, nil
}

// GitCredential asks git's credential helpers (`git credential fill`)
// for the password of localpart@domain, with protocol=xmpp. With
// interactive false git never prompts (GIT_TERMINAL_PROMPT=0), and a
// missing password is ErrNoPassword.
type GitCredential struct {
	// Dir is where git runs (a repository whose config names helpers);
	// empty: the current directory.
	Dir string
	// Env is the environment (nil: os.Environ()).
	Env         []string
	Interactive bool
}

func (g GitCredential) run(ctx context.Context, action string, c Credential) ([]byte, error) {
	in, err := c.Encode()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, "git", "credential", action)
	cmd.Dir = g.Dir
	env := g.Env
	if env == nil {
		env = os.Environ()
	}
	if !g.Interactive {
		env = append(env[:len(env):len(env)], "GIT_TERMINAL_PROMPT=0", "GIT_ASKPASS=", "SSH_ASKPASS=")
	}
	cmd.Env = env
	cmd.Stdin = bytes.NewReader(in)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("xmpp: git credential %s: %w: %s", action, err, strings.TrimSpace(stderr.String()))
	}
	return out.Bytes(), nil
}

// Fill returns the password for user@domain.
func (g GitCredential) Fill(ctx context.Context, user, domain string) (string, error) {
	out, err := g.run(ctx, "fill", Credential{Protocol: "xmpp", Host: domain, Username: user})
	if err != nil {
		if !g.Interactive && strings.Contains(err.Error(), "terminal prompts disabled") {
			return "", fmt.Errorf("%w for %s@%s (protocol=xmpp host=%s username=%s)", ErrNoPassword, user, domain, domain, user)
		}
		return "", err
	}
	c, err := ParseCredential(out)
	if err != nil {
		return "", err
	}
	if c.Password == "" {
		return "", fmt.Errorf("%w for %s@%s", ErrNoPassword, user, domain)
	}
	return c.Password, nil
}

// Approve tells the helpers that the password worked (a store helper
// saves it); Reject that it did not (they forget it).
func (g GitCredential) Approve(ctx context.Context, user, domain, password string) error {
	_, err := g.run(ctx, "approve", Credential{Protocol: "xmpp", Host: domain, Username: user, Password: password})
	return err
}

// Reject: see Approve.
func (g GitCredential) Reject(ctx context.Context, user, domain, password string) error {
	_, err := g.run(ctx, "reject", Credential{Protocol: "xmpp", Host: domain, Username: user, Password: password})
	return err
}
