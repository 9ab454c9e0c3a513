package helper

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/git-remote-daemon/git-remote-daemon/internal/gitexec"
)

// Services a helper may connect to and a server may run.
const (
	UploadPack  = "git-upload-pack"
	ReceivePack = "git-receive-pack"
)

// ValidService reports whether s is a service Serve runs.
func ValidService(s string) bool { return s == UploadPack || s == ReceivePack }

// DefaultGitProtocol returns the GIT_PROTOCOL value the far side's service
// should see, the way git_connect (connect.c) computes it for ssh and
// local transports.
//
// git 2.39 does not set GIT_PROTOCOL in a connect helper's environment: it
// asks for "connect git-upload-pack" and then discovers the version from
// the server's first line. A helper that passed nothing on would always
// get protocol v0. So: GIT_PROTOCOL from the environment if git (or a
// wrapper) set it; otherwise protocol.version from git's configuration
// (GIT_DIR and any -c options reach the helper through its environment),
// 2 when unset, as in git >= 2.26. Push never uses v2 (connect.c: "Don't
// use protocol v2 for pushing; it's not implemented yet").
func DefaultGitProtocol(ctx context.Context, service string) (string, error) {
	if v := os.Getenv("GIT_PROTOCOL"); v != "" {
		return v, nil
	}
	out, err := gitexec.Command(ctx, "", "config", "--get", "protocol.version").Output()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit) && exit.ExitCode() == 1: // unset
		out = []byte("2")
	case err != nil:
		return "", fmt.Errorf("reading protocol.version: %w", err)
	}
	return ProtocolFor(strings.TrimSpace(string(out)), service)
}

// ProtocolFor maps a protocol.version setting to the GIT_PROTOCOL value for
// service: "" for v0, "version=1", or "version=2" (upload-pack only).
func ProtocolFor(version, service string) (string, error) {
	switch version {
	case "0":
		return "", nil
	case "1":
		return "version=1", nil
	case "2":
		if service == ReceivePack {
			return "", nil
		}
		return "version=2", nil
	}
	return "", fmt.Errorf("unknown value for config 'protocol.version': %q", version)
}

// validGitProtocol reports whether v may be passed as GIT_PROTOCOL: git
// daemon joins its extra parameters with ':' and never passes control
// characters; sshd would pass any byte, but nothing legitimate needs one.
func validGitProtocol(v string) bool {
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] > 0x7e {
			return false
		}
	}
	return true
}

// localEnv lists the variables `git rev-parse --local-env-vars` names:
// they describe the repository of the process that started the server
// (for example the helper's own GIT_DIR) and must not reach a service
// serving another repository.
var localEnv = []string{
	"GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_CONFIG", "GIT_CONFIG_PARAMETERS",
	"GIT_CONFIG_COUNT", "GIT_OBJECT_DIRECTORY", "GIT_DIR", "GIT_WORK_TREE",
	"GIT_IMPLICIT_WORK_TREE", "GIT_GRAFT_FILE", "GIT_INDEX_FILE",
	"GIT_NO_REPLACE_OBJECTS", "GIT_REPLACE_REF_BASE", "GIT_PREFIX",
	"GIT_INTERNAL_SUPER_PREFIX", "GIT_SHALLOW_FILE", "GIT_COMMON_DIR",
	"GIT_PROTOCOL",
}

// serviceEnv returns env without repository-local git variables, with
// GIT_PROTOCOL set to protocol when it is not empty.
func serviceEnv(env []string, protocol string) []string {
	out := make([]string, 0, len(env)+1)
outer:
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "GIT_CONFIG_KEY_") || strings.HasPrefix(name, "GIT_CONFIG_VALUE_") {
			continue
		}
		for _, l := range localEnv {
			if name == l {
				continue outer
			}
		}
		out = append(out, kv)
	}
	if protocol != "" {
		out = append(out, "GIT_PROTOCOL="+protocol)
	}
	return out
}
