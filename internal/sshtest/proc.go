package sshtest

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
)

// procInfo is what /proc/<pid>/stat tells about one process.
type procInfo struct {
	pid, ppid int
	state     byte
	start     uint64 // starttime (clock ticks since boot): tells a reused pid apart
}

// readStat parses /proc/<pid>/stat. The comm field may hold spaces and
// parentheses, so the fields are taken after the last ')'.
func readStat(pid int) (procInfo, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procInfo{}, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procInfo{}, fmt.Errorf("pid %d: malformed stat %q", pid, b)
	}
	f := bytes.Fields(b[i+1:])
	// f[0]=state f[1]=ppid ... f[19]=starttime (field 22 of the whole line)
	if len(f) < 20 {
		return procInfo{}, fmt.Errorf("pid %d: short stat %q", pid, b)
	}
	ppid, err := strconv.Atoi(string(f[1]))
	if err != nil {
		return procInfo{}, fmt.Errorf("pid %d: ppid: %v", pid, err)
	}
	start, err := strconv.ParseUint(string(f[19]), 10, 64)
	if err != nil {
		return procInfo{}, fmt.Errorf("pid %d: starttime: %v", pid, err)
	}
	return procInfo{pid: pid, ppid: ppid, state: f[0][0], start: start}, nil
}

// descendants returns every live process whose ppid chain leads to root
// (root itself excluded), parents before children.
func descendants(root int) []procInfo {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	kids := map[int][]procInfo{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || !e.IsDir() {
			continue
		}
		p, err := readStat(pid)
		if err != nil || p.state == 'Z' || p.state == 'X' {
			continue // exited meanwhile, or a zombie: nothing left to signal
		}
		kids[p.ppid] = append(kids[p.ppid], p)
	}
	var out []procInfo
	queue := []int{root}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		for _, k := range kids[pid] {
			out = append(out, k)
			queue = append(queue, k.pid)
		}
	}
	return out
}

// alive reports whether p is still running (not exited, not a zombie,
// its pid not taken over by a later process).
func alive(p procInfo) bool {
	q, err := readStat(p.pid)
	if err != nil {
		return false
	}
	return q.start == p.start && q.state != 'Z' && q.state != 'X'
}

// freeze SIGSTOPs root (if withRoot) and all its descendants, re-walking
// /proc until no new descendant shows up, so nothing can fork or be
// orphaned unseen (once a parent dies its children are reparented and no
// longer findable from root). It returns every process it stopped.
func freeze(root procInfo, withRoot bool) []procInfo {
	if !alive(root) {
		return nil // exited (or pid reused): its children were reparented
	}
	var all []procInfo
	seen := map[int]bool{}
	if withRoot {
		_ = syscall.Kill(root.pid, syscall.SIGSTOP)
		all = append(all, root)
		seen[root.pid] = true
	}
	for range 50 {
		fresh := 0
		for _, p := range descendants(root.pid) {
			if seen[p.pid] {
				continue
			}
			seen[p.pid] = true
			fresh++
			_ = syscall.Kill(p.pid, syscall.SIGSTOP)
			all = append(all, p)
		}
		if fresh == 0 {
			break
		}
		// Let a process caught between fork and SIGSTOP settle.
		time.Sleep(2 * time.Millisecond)
	}
	return all
}

// killAll SIGKILLs ps (checking each is still the process recorded) and
// waits up to timeout for them to be gone or zombies. It returns those
// still alive after that.
func killAll(ps []procInfo, timeout time.Duration) []procInfo {
	for _, p := range ps {
		if alive(p) {
			_ = syscall.Kill(p.pid, syscall.SIGKILL)
		}
	}
	deadline := time.Now().Add(timeout)
	for {
		var left []procInfo
		for _, p := range ps {
			if alive(p) {
				left = append(left, p)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// signalTree sends sig to root (if withRoot) and all its descendants,
// walking /proc again until no new process turns up.
func signalTree(root procInfo, withRoot bool, sig syscall.Signal) {
	if !alive(root) {
		return
	}
	if withRoot {
		_ = syscall.Kill(root.pid, sig)
	}
	seen := map[int]bool{}
	for range 50 {
		fresh := 0
		for _, p := range descendants(root.pid) {
			if !seen[p.pid] {
				seen[p.pid] = true
				fresh++
				_ = syscall.Kill(p.pid, sig)
			}
		}
		if fresh == 0 {
			return
		}
	}
}
