package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// childPids returns the pids whose parent is pid, zombies included.
func childPids(pid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		c, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		f := bytes.Fields(b[i+1:])
		if i < 0 || len(f) < 2 {
			continue
		}
		if pp, _ := strconv.Atoi(string(f[1])); pp == pid {
			out = append(out, c)
		}
	}
	return out
}

// settledCPU waits (up to 5 s) until pid has no children left, so that
// the CPU time of those a command made it run (sshd's per-connection
// process, the daemon's git-upload-pack) is in its cutime, and returns
// procCPU(b, pid) (bench_idle_test.go).
func settledCPU(b *testing.B, pid int) time.Duration {
	b.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(childPids(pid)) > 0 {
		if time.Now().After(deadline) {
			b.Logf("pid %d still has children %v: their CPU time is not counted", pid, childPids(pid))
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	return procCPU(b, pid)
}

// cpuRun runs a command and returns its wall time and its CPU time (user
// plus system, with every descendant it waited for: git's helpers, ssh,
// index-pack, pack-objects).
func cpuRun(tb testing.TB, env []string, dir, name string, args ...string) (wall, cpu time.Duration) {
	tb.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Env = dir, env
	start := time.Now()
	out, err := cmd.CombinedOutput()
	wall = time.Since(start)
	if err != nil {
		tb.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return wall, cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
}

// cpuSplit is the CPU time of one operation on each side.
type cpuSplit struct{ client, server time.Duration }

func (c cpuSplit) total() time.Duration { return c.client + c.server }

func (c cpuSplit) String() string {
	return fmt.Sprintf("%.2f+%.2f", c.client.Seconds(), c.server.Seconds())
}
