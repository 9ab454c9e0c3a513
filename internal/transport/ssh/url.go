package ssh

import (
	"fmt"
	"strconv"
	"strings"
)

// target is where an ssh remote lives.
type target struct {
	User, Host string
	Port       int // 0: ssh's default (or ssh_config)
	Path       string
}

// dest is the user@host argument of ssh.
func (t target) dest() string {
	if t.User != "" {
		return t.User + "@" + t.Host
	}
	return t.Host
}

// parseURL parses the ssh URL forms git accepts (connect.c):
// ssh://[user@]host[:port]/path, git+ssh://, ssh+git://, and the scp-like
// [user@]host:path, where a bracketed [user@host:port] or [::1] may stand
// for the host. "/~user/path" in a URL means "~user/path".
func parseURL(u string) (target, error) {
	var t target
	rest, isURL := "", false
	for _, scheme := range []string{"ssh://", "git+ssh://", "ssh+git://"} {
		if r, ok := strings.CutPrefix(u, scheme); ok {
			rest, isURL = r, true
			break
		}
	}
	if isURL {
		hostport, path, ok := strings.Cut(rest, "/")
		if !ok || path == "" {
			return t, fmt.Errorf("%s: no path in ssh URL", u)
		}
		t.Path = "/" + path
		if strings.HasPrefix(path, "~") {
			t.Path = path
		}
		if i := strings.LastIndex(hostport, "@"); i >= 0 {
			t.User, hostport = hostport[:i], hostport[i+1:]
		}
		host, port, err := splitHostPort(hostport)
		if err != nil {
			return t, fmt.Errorf("%s: %w", u, err)
		}
		t.Host, t.Port = host, port
	} else {
		var hostpart string
		if strings.HasPrefix(u, "[") {
			end := strings.Index(u, "]:")
			if end < 0 {
				return t, fmt.Errorf("%s: unterminated [", u)
			}
			hostpart, t.Path = u[1:end], u[end+2:]
			if i := strings.LastIndex(hostpart, "@"); i >= 0 {
				t.User, hostpart = hostpart[:i], hostpart[i+1:]
			}
			if strings.Count(hostpart, ":") == 1 { // [host:port]; else an IPv6 address
				h, p, _ := strings.Cut(hostpart, ":")
				n, err := strconv.Atoi(p)
				if err != nil || n <= 0 || n > 65535 {
					return t, fmt.Errorf("%s: bad port %q", u, p)
				}
				hostpart, t.Port = h, n
			}
			t.Host = hostpart
		} else {
			hostpart, path, ok := strings.Cut(u, ":")
			if !ok {
				return t, fmt.Errorf("%s: not an ssh URL", u)
			}
			t.Path = path
			if i := strings.LastIndex(hostpart, "@"); i >= 0 {
				t.User, hostpart = hostpart[:i], hostpart[i+1:]
			}
			t.Host = hostpart
		}
	}
	if t.Host == "" {
		return t, fmt.Errorf("%s: no host", u)
	}
	if t.Path == "" {
		return t, fmt.Errorf("%s: no path", u)
	}
	// As git does: a host or user starting with "-" would be an option.
	if strings.HasPrefix(t.Host, "-") || strings.HasPrefix(t.User, "-") {
		return t, fmt.Errorf("%s: strange hostname or user blocked", u)
	}
	return t, nil
}

func splitHostPort(hp string) (string, int, error) {
	if strings.HasPrefix(hp, "[") {
		end := strings.Index(hp, "]")
		if end < 0 {
			return "", 0, fmt.Errorf("unterminated [ in host")
		}
		host, rest := hp[1:end], hp[end+1:]
		if rest == "" {
			return host, 0, nil
		}
		p, ok := strings.CutPrefix(rest, ":")
		if !ok {
			return "", 0, fmt.Errorf("garbage after ]")
		}
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 || n > 65535 {
			return "", 0, fmt.Errorf("bad port %q", p)
		}
		return host, n, nil
	}
	host, p, ok := strings.Cut(hp, ":")
	if !ok || p == "" {
		return host, 0, nil
	}
	n, err := strconv.Atoi(p)
	if err != nil || n <= 0 || n > 65535 {
		return "", 0, fmt.Errorf("bad port %q", p)
	}
	return host, n, nil
}
