// Package gitexec is the one way the program runs git (and the other
// programs it starts and must be able to stop, such as ssh).
//
// Every command it builds:
//   - runs with the parent's environment plus GIT_TERMINAL_PROMPT=0:
//     there is nobody to answer a prompt;
//   - is the leader of a process group of its own, so that stopping it
//     reaches what it started (index-pack, ssh, a remote helper);
//   - when its context ends, gets SIGTERM in its whole group (git then
//     removes its lock files) and, KillDelay later, SIGKILL;
//   - has a WaitDelay, so a grandchild that keeps stderr open cannot
//     make Wait hang once git has exited or the context has ended;
//   - on Linux and FreeBSD dies with the program, even on `kill -9` of
//     it (SysProcAttr.Pdeathsig): a restarted daemon must not find the
//     previous one's fetch still running. darwin and the other BSDs have
//     no such setting; there a child outlives a killed parent.
//
// No LC_ALL is set: the output that is parsed (for-each-ref, config -z,
// ls-remote, rev-parse, the --porcelain formats) is not translated, and
// git's messages reach the user in the user's language.
package gitexec

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// WaitDelay is how long Wait waits for a command's output pipes to close
// after the command exited or its context ended; then it closes them.
const WaitDelay = 2 * time.Second

// KillDelay is how long a command whose context ended has, after
// SIGTERM, before its process group is killed.
const KillDelay = time.Second

// Env returns the environment of a git command: the program's own,
// GIT_TERMINAL_PROMPT=0, then extra (later values win).
func Env(extra ...string) []string {
	return append(append(os.Environ(), "GIT_TERMINAL_PROMPT=0"), extra...)
}

// Command returns `git args...` to run in dir ("" is the current
// directory), set up as the package describes. Callers may add to its
// Env, set its standard streams, and must Start or Run it.
func Command(ctx context.Context, dir string, args ...string) *exec.Cmd {
	cmd := Program(ctx, "git", args...)
	cmd.Dir = dir
	return cmd
}

// Program is Command for another program: a git installed elsewhere, or
// ssh. A command that is stopped by other means than its context (use
// context.Background()) can be ended with Kill.
func Program(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = Env()
	cmd.SysProcAttr = sysProcAttr()
	cmd.WaitDelay = WaitDelay
	cmd.Cancel = func() error { return cancel(cmd) }
	return cmd
}

// Kill kills a started command with its whole process group at once.
// The caller must not have waited for it yet (its process group id could
// then belong to another process).
func Kill(cmd *exec.Cmd) error {
	if cmd == nil || cmd.Process == nil {
		return nil
	}
	signalGroup(cmd.Process.Pid, sigKill)
	return cmd.Process.Kill()
}

// cancel is every command's Cancel: SIGTERM to the group, SIGKILL to it
// KillDelay later. os.ErrProcessDone from the leader means it was waited
// for already: its group is left alone. The later SIGKILL goes to the
// group id even if the leader was reaped meanwhile: the kernel does not
// reuse a pid while a group of that id has members, and once it is empty
// the signal gets ESRCH unless, within KillDelay, pid allocation (which
// moves on sequentially up to pid_max) came round to hand that very pid
// to a new group leader.
func cancel(cmd *exec.Cmd) error {
	if err := cmd.Process.Signal(sigTerm); err != nil {
		return err
	}
	pid := cmd.Process.Pid
	signalGroup(pid, sigTerm)
	time.AfterFunc(KillDelay, func() { signalGroup(pid, sigKill) })
	return nil
}

// Error is a failed git command with what it wrote to stderr.
type Error struct {
	Args   []string
	Err    error
	Stderr string
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("git %s: %v", strings.Join(e.Args, " "), e.Err)
	if s := Summary(e.Stderr, 3); s != "" {
		msg += ": " + s
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// Output runs `git args...` in dir with env added to its environment and
// returns its stdout; on failure the error is an *Error (stdout is still
// returned: `git push --porcelain` reports rejections there).
func Output(ctx context.Context, dir string, env []string, args ...string) ([]byte, error) {
	cmd := Command(ctx, dir, args...)
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), &Error{Args: args, Err: err, Stderr: stderr.String()}
	}
	return stdout.Bytes(), nil
}

// Summary keeps what a user needs to see of git's stderr, at most n
// lines joined with "; ", hints left out: git's "error:" and "fatal:"
// lines with the line before the first of them (ssh's complaint before
// "fatal: Could not read from remote repository", say), not the advice
// that follows them over several lines; when there are none, the last
// lines.
func Summary(stderr string, n int) string {
	var lines []string
	first := -1
	for _, l := range strings.Split(stderr, "\n") {
		if l = strings.TrimSpace(l); l == "" || strings.HasPrefix(l, "hint:") {
			continue
		}
		lines = append(lines, l)
		if first < 0 && isProblem(l) {
			first = len(lines) - 1
		}
	}
	keep := lines
	if first >= 0 {
		keep = nil
		if first > 0 {
			keep = append(keep, lines[first-1])
		}
		for _, l := range lines[first:] {
			if isProblem(l) {
				keep = append(keep, l)
			}
		}
	}
	if len(keep) > n {
		keep = keep[len(keep)-n:]
	}
	return strings.Join(keep, "; ")
}

func isProblem(line string) bool {
	return strings.HasPrefix(line, "error:") || strings.HasPrefix(line, "fatal:")
}
