package thnode

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const identityRoleEnv = "GRD_THNODE_TEST_IDENTITY"

// TestLoadOrCreateConcurrent: processes that all find no identity and
// create one at the same moment end up with the same one.
func TestLoadOrCreateConcurrent(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "git-remote-daemon", "th-id.json")
	const n = 30
	type proc struct {
		cmd   *exec.Cmd
		stdin io.WriteCloser
		out   *bufio.Reader
		err   bytes.Buffer
	}
	procs := make([]*proc, n)
	for i := range procs {
		p := &proc{cmd: exec.Command(self, "-test.run=^TestLoadOrCreateRole$")}
		p.cmd.Env = append(os.Environ(), identityRoleEnv+"="+path)
		p.cmd.Stderr = &p.err
		if p.stdin, err = p.cmd.StdinPipe(); err != nil {
			t.Fatal(err)
		}
		stdout, err := p.cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		p.out = bufio.NewReader(stdout)
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.cmd.Process.Kill(); _ = p.cmd.Wait() })
		procs[i] = p
	}
	// All started and waiting: let them go together.
	for i, p := range procs {
		if line, err := p.out.ReadString('\n'); line != "ready\n" {
			t.Fatalf("process %d: %q %v\n%s", i, line, err, p.err.String())
		}
	}
	for _, p := range procs {
		p.stdin.Close()
	}
	names := map[string]int{}
	for i, p := range procs {
		line, _ := p.out.ReadString('\n')
		if err := p.cmd.Wait(); err != nil || !strings.HasPrefix(line, "hashname ") {
			t.Fatalf("process %d: %q %v\n%s", i, line, err, p.err.String())
		}
		names[strings.TrimSpace(strings.TrimPrefix(line, "hashname "))]++
	}
	if len(names) != 1 {
		t.Fatalf("%d processes made %d identities: %v", n, len(names), names)
	}
	id, err := LoadOrCreate(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := names[string(id.Hashname())]; !ok {
		t.Errorf("the identity on disk, %s, is none of theirs: %v", id.Hashname(), names)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	var files []string
	for _, e := range entries {
		files = append(files, e.Name())
	}
	if fmt.Sprint(files) != "[th-id.json th-id.json.lock]" {
		t.Errorf("files left next to the identity: %v", files)
	}
}

// TestLoadOrCreateRole is one of the processes of
// TestLoadOrCreateConcurrent; it does nothing unless asked to.
func TestLoadOrCreateRole(t *testing.T) {
	path := os.Getenv(identityRoleEnv)
	if path == "" {
		return
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	id, err := LoadOrCreate(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("hashname", id.Hashname())
	os.Exit(0)
}

// TestLoadOrCreateKeepsExisting: an identity that exists is loaded,
// never replaced.
func TestLoadOrCreateKeepsExisting(t *testing.T) {
	path := filepath.Join(t.TempDir(), "th-id.json")
	id := identity(t)
	if err := createIdentity(path, id); err != nil {
		t.Fatal(err)
	}
	if err := createIdentity(path, identity(t)); !os.IsExist(err) {
		t.Errorf("creating over an identity: %v, want it to exist", err)
	}
	got, err := LoadOrCreate(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Hashname() != id.Hashname() {
		t.Errorf("LoadOrCreate = %s, want the existing %s", got.Hashname(), id.Hashname())
	}
}
