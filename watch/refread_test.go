package watch

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
)

// fixture is a bare repository with two commits on main and an annotated
// tag, made once and copied for each case.
type fixture struct {
	dir          string // the template git dir
	c1, c2, tag  string // commits and the tag object
	missing, nul string
}

func getFixture(t testing.TB) fixture {
	t.Helper()
	dir := t.TempDir()
	gitDir := filepath.Join(dir, "r.git")
	git(t, dir, "init", "-q", "--bare", gitDir)
	tree := git(t, dir, "--git-dir="+gitDir, "hash-object", "-t", "tree", "-w", "/dev/null")
	c1 := git(t, dir, "--git-dir="+gitDir, "commit-tree", tree, "-m", "one")
	c2 := git(t, dir, "--git-dir="+gitDir, "commit-tree", tree, "-p", c1, "-m", "two")
	git(t, dir, "--git-dir="+gitDir, "update-ref", "refs/heads/main", c2)
	git(t, dir, "--git-dir="+gitDir, "tag", "-a", "-m", "annotated", "v1", c1)
	tag := git(t, dir, "--git-dir="+gitDir, "rev-parse", "refs/tags/v1")
	return fixture{dir: gitDir, c1: c1, c2: c2, tag: tag,
		missing: strings.Repeat("5a", 20), nul: strings.Repeat("0", 40)}
}

// copyRepo copies the fixture into a new directory.
func (f fixture) copyRepo(t testing.TB) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "r.git")
	if err := os.CopyFS(dst, os.DirFS(f.dir)); err != nil {
		t.Fatal(err)
	}
	return dst
}

func writeFile(t testing.TB, gitDir, name, content string) {
	t.Helper()
	path := filepath.Join(gitDir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// agree lists gitDir in process and with git and fails unless both give
// the same refs (or both fail). It reports whether the in-process reader
// answered alone, without handing the listing to git.
func agree(t testing.TB, gitDir, what string) (alone bool) {
	t.Helper()
	ctx := context.Background()
	want, wantErr := Snapshot(ctx, gitDir)
	got, gotErr := Read(ctx, gitDir)
	if (wantErr != nil) != (gotErr != nil) {
		t.Fatalf("%s: git says %v, in process %v (refs %v)", what, wantErr, gotErr, got)
	}
	if wantErr == nil && !got.Equal(want) {
		t.Fatalf("%s: in process and git differ:\n%s", what, describeDiff(want, got))
	}
	_, _, err := readFiles(gitDir, nil, nil)
	return !errors.Is(err, errNeedGit)
}

func describeDiff(want, got Refs) string {
	var lines []string
	for _, c := range Diff(want, got) {
		lines = append(lines, fmt.Sprintf("  %s: git %q, in process %q", c.Ref, c.Old, c.New))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func TestReadAgreesWithGit(t *testing.T) {
	f := getFixture(t)
	gitDir := f.copyRepo(t)
	run := func(args ...string) { git(t, gitDir, append([]string{"--git-dir=" + gitDir}, args...)...) }
	steps := []struct {
		name string
		do   func()
	}{
		{"loose branch and annotated tag", func() {}},
		{"lightweight tag, nested branch, stash, notes", func() {
			run("tag", "lw", f.c1)
			run("update-ref", "refs/heads/x/y/z", f.c1)
			run("update-ref", "refs/stash", f.c2)
			run("update-ref", "refs/notes/commits", f.c1)
		}},
		{"all packed, annotated tag peeled", func() { run("pack-refs", "--all", "--prune") }},
		{"packed and a newer loose value", func() { run("update-ref", "refs/heads/main", f.c1) }},
		{"deleted packed ref", func() { run("update-ref", "-d", "refs/tags/lw") }},
		{"objects only in a pack (index v1)", func() {
			run("-c", "pack.indexVersion=1", "repack", "-adq")
			run("prune-packed")
		}},
		{"objects only in a pack (index v2)", func() {
			run("-c", "pack.indexVersion=2", "repack", "-adq")
		}},
		{"symbolic refs: loose, to a packed target, dangling, to HEAD", func() {
			run("symbolic-ref", "refs/remotes/o/HEAD", "refs/heads/main")
			run("symbolic-ref", "refs/remotes/o/packed", "refs/heads/x/y/z")
			run("symbolic-ref", "refs/remotes/o/dangling", "refs/heads/nowhere")
			writeFile(t, gitDir, "refs/remotes/o/head", "ref: HEAD\n")
		}},
		{"symbolic chains of five and six reads, and a loop", func() {
			for i := 1; i <= 5; i++ {
				writeFile(t, gitDir, fmt.Sprintf("refs/chain/%d", i), fmt.Sprintf("ref: refs/chain/%d\n", i-1))
			}
			writeFile(t, gitDir, "refs/chain/0", f.c1+"\n")
			writeFile(t, gitDir, "refs/loop/a", "ref: refs/loop/b\n")
			writeFile(t, gitDir, "refs/loop/b", "ref: refs/loop/a\n")
		}},
		{"files mid-write and hand-written", func() {
			writeFile(t, gitDir, "refs/heads/empty", "")
			writeFile(t, gitDir, "refs/heads/partial", f.c1[:20])
			writeFile(t, gitDir, "refs/heads/junk", f.c1+"junk\n")
			writeFile(t, gitDir, "refs/heads/spaced", f.c1+" trailing words\n\n")
			writeFile(t, gitDir, "refs/heads/upper", strings.ToUpper(f.c1)+"\n")
			writeFile(t, gitDir, "refs/heads/nul", f.c1+"\x00junk")
			writeFile(t, gitDir, "refs/heads/null", f.nul+"\n")
			writeFile(t, gitDir, "refs/heads/vt", f.c1+"\v")
			writeFile(t, gitDir, "refs/heads/main.lock", f.c2+"\n")
			writeFile(t, gitDir, "refs/heads/.hidden", f.c2+"\n")
			writeFile(t, gitDir, "refs/heads/bad..name", f.c2+"\n")
			writeFile(t, gitDir, "refs/heads/sp ace", f.c2+"\n")
			writeFile(t, gitDir, "refs/heads/dot.", f.c2+"\n")
			writeFile(t, gitDir, "refs/heads/a@{b}", f.c2+"\n")
			writeFile(t, gitDir, "refs/heads/@", f.c2+"\n")
			writeFile(t, gitDir, "refs/heads/crlf", "ref: refs/heads/main\r\n")
		}},
		{"a broken loose file hides its packed ref", func() {
			writeFile(t, gitDir, "refs/heads/x/y/z", f.c1[:30])
		}},
		{"an empty directory where a packed ref is", func() {
			run("update-ref", "refs/heads/dir", f.c1)
			run("pack-refs", "--all", "--prune")
			if err := os.MkdirAll(filepath.Join(gitDir, "refs/heads/dir"), 0o755); err != nil {
				t.Fatal(err)
			}
		}},
		{"the empty tree, known to git without being stored", func() {
			writeFile(t, gitDir, "refs/heads/empty-tree", emptyTree[40]+"\n")
		}},
	}
	for _, st := range steps {
		st.do()
		if !agree(t, gitDir, st.name) {
			t.Errorf("%s: handed to git, expected in process", st.name)
		}
	}
	// A ref to an object that does not exist: git skips it; the reader
	// hands such a listing to git rather than guess.
	writeFile(t, gitDir, "refs/heads/missing", f.missing+"\n")
	if agree(t, gitDir, "a ref to a missing object") {
		t.Error("a missing object was not handed to git")
	}
}

func TestReadAlternatesAndSHA256(t *testing.T) {
	f := getFixture(t)
	dir := t.TempDir()
	clone := filepath.Join(dir, "shared.git")
	git(t, dir, "clone", "-q", "--bare", "--shared", f.dir, clone)
	git(t, dir, "--git-dir="+clone, "update-ref", "refs/heads/from-alternate", f.c1)
	if !agree(t, clone, "objects in an alternate") {
		t.Error("alternates handed to git")
	}
	sha := filepath.Join(dir, "sha256.git")
	git(t, dir, "init", "-q", "--bare", "--object-format=sha256", sha)
	tree := git(t, dir, "--git-dir="+sha, "hash-object", "-t", "tree", "-w", "/dev/null")
	c := git(t, dir, "--git-dir="+sha, "commit-tree", tree, "-m", "one")
	git(t, dir, "--git-dir="+sha, "update-ref", "refs/heads/main", c)
	git(t, dir, "--git-dir="+sha, "tag", "-a", "-m", "t", "v1", c)
	writeFile(t, sha, "refs/heads/sha1-sized", f.c1+"\n")
	if !agree(t, sha, "sha256 loose") {
		t.Error("sha256 handed to git")
	}
	if err := os.Remove(filepath.Join(sha, "refs/heads/sha1-sized")); err != nil {
		t.Fatal(err)
	}
	git(t, dir, "--git-dir="+sha, "pack-refs", "--all")
	git(t, dir, "--git-dir="+sha, "repack", "-adq")
	if !agree(t, sha, "sha256 packed") {
		t.Error("sha256 handed to git")
	}
}

// TestReadNoRepository: like git, Read refuses a directory without HEAD,
// refs/ or objects/ rather than list no refs.
func TestReadNoRepository(t *testing.T) {
	f := getFixture(t)
	for _, missing := range []string{"HEAD", "refs", "objects"} {
		gitDir := f.copyRepo(t)
		if err := os.RemoveAll(filepath.Join(gitDir, missing)); err != nil {
			t.Fatal(err)
		}
		if _, err := Read(context.Background(), gitDir); !errors.Is(err, ErrNoRepository) {
			t.Errorf("without %s: %v", missing, err)
		}
		agree(t, gitDir, "without "+missing)
	}
}

// TestReadReftableFallsBackToGit: a repository whose config names
// another ref storage is never read in process.
func TestReadReftableFallsBackToGit(t *testing.T) {
	f := getFixture(t)
	gitDir := f.copyRepo(t)
	cfg, err := os.ReadFile(filepath.Join(gitDir, "config"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, gitDir, "config", string(cfg)+"[extensions]\n\trefStorage = reftable\n")
	if _, _, err := readFiles(gitDir, nil, nil); !errors.Is(err, errNeedGit) {
		t.Fatalf("readFiles on a reftable repository: %v", err)
	}
	agree(t, gitDir, "reftable config") // git 2.39 refuses it; so must Read
}

// refNames and refContents are what the randomized test writes: valid
// and malformed names, and every kind of content git may meet.
var refNames = []string{
	"refs/heads/main", "refs/heads/a", "refs/heads/a/b", "refs/heads/x/y/z", "refs/tags/v1",
	"refs/tags/lw", "refs/stash", "refs/remotes/o/HEAD", "refs/remotes/o/main", "refs/notes/commits",
	"refs/heads/bad..name", "refs/heads/sp ace", "refs/heads/end.", "refs/heads/t.lock",
	"refs/heads/.hidden", "refs/heads/@", "refs/heads/a@{b}", "refs/foo",
}

func refContents(f fixture) []string {
	return []string{
		f.c1 + "\n", f.c2 + "\n", f.tag + "\n", emptyTree[40] + "\n", f.missing + "\n", f.nul + "\n",
		strings.ToUpper(f.c1), f.c1, f.c1 + "  \n", f.c1 + " junk\n", f.c1 + "junk", f.c1[:20], "", "\n",
		f.c1 + "\x00x", f.c1 + "\r\n", "ref: refs/heads/main\n", "ref:refs/heads/a", "ref: refs/heads/none\n",
		"ref: refs/remotes/o/HEAD\n", "ref: HEAD\n", "ref: bad..target\n", "ref: refs/heads/x/y/z\r\n", "ref:",
	}
}

// applyOps interprets ops as a sequence of changes to gitDir, checking
// after each that the in-process listing agrees with git's. It returns
// how many listings the reader answered alone.
func applyOps(t testing.TB, f fixture, gitDir string, ops []byte) (alone, total int) {
	contents := refContents(f)
	objs := []string{f.c1, f.c2, f.tag, f.missing}
	next := func() int {
		if len(ops) == 0 {
			return 0
		}
		b := int(ops[0])
		ops = ops[1:]
		return b
	}
	gitQuiet := func(args ...string) { // git may refuse: that is fine
		cmd := gitCmd(gitDir, append([]string{"--git-dir=" + gitDir}, args...)...)
		_ = cmd.Run()
	}
	for len(ops) > 0 && total < 40 {
		op, name := next()%8, refNames[next()%len(refNames)]
		path := filepath.Join(gitDir, filepath.FromSlash(name))
		switch op {
		case 0, 1:
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err == nil {
				_ = os.WriteFile(path, []byte(contents[next()%len(contents)]), 0o644)
			}
		case 2:
			gitQuiet("pack-refs", "--all", "--prune")
		case 3:
			_ = os.Remove(path)
		case 4:
			gitQuiet("update-ref", "-d", name)
		case 5:
			gitQuiet("update-ref", name, objs[next()%2])
		case 6: // a hand-written packed-refs, sorted, tags peeled
			var b strings.Builder
			if next()%2 == 0 {
				b.WriteString("# pack-refs with: peeled fully-peeled sorted \n")
			}
			names := map[string]bool{}
			for n := next() % 6; n > 0; n-- {
				names[refNames[next()%len(refNames)]] = true
			}
			var sorted []string
			for n := range names {
				sorted = append(sorted, n)
			}
			sort.Strings(sorted)
			for _, n := range sorted {
				oid := objs[next()%len(objs)]
				fmt.Fprintf(&b, "%s %s\n", oid, n)
				if oid == f.tag {
					fmt.Fprintf(&b, "^%s\n", f.c1)
				}
			}
			_ = os.WriteFile(filepath.Join(gitDir, "packed-refs"), []byte(b.String()), 0o644)
		case 7:
			_ = os.MkdirAll(path, 0o755)
		}
		total++
		if agree(t, gitDir, fmt.Sprintf("after op %d (%d on %s)", total, op, name)) {
			alone++
		}
	}
	return alone, total
}

// TestReadAgreesWithGitRandomized runs random sequences of ref changes
// (git's own and hand-written, valid and broken) and compares every
// listing with git's.
func TestReadAgreesWithGitRandomized(t *testing.T) {
	f := getFixture(t)
	seeds := 40
	if testing.Short() {
		seeds = 8
	}
	alone, total := 0, 0
	for seed := range seeds {
		rng := rand.New(rand.NewPCG(uint64(seed), 12))
		ops := make([]byte, 60)
		for i := range ops {
			ops[i] = byte(rng.IntN(256))
		}
		a, n := applyOps(t, f, f.copyRepo(t), ops)
		alone, total = alone+a, total+n
	}
	t.Logf("%d of %d listings answered in process", alone, total)
	if alone < total/2 {
		t.Errorf("only %d of %d listings answered in process", alone, total)
	}
}

// FuzzReadAgreesWithGit: any sequence of ref changes leaves the
// in-process listing equal to git's.
func FuzzReadAgreesWithGit(f *testing.F) {
	f.Add([]byte{0, 0, 0, 2, 0, 1, 3, 16, 5})
	f.Add([]byte{6, 0, 4, 1, 2, 3, 4, 5, 0, 3, 7, 0, 17})
	f.Add([]byte{0, 7, 16, 0, 6, 20, 7, 2, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		fx := getFixture(t)
		applyOps(t, fx, fx.copyRepo(t), ops)
	})
}

// FuzzParsePacked: packed-refs content never panics the parser, and
// what it accepts has well-formed object names.
func FuzzParsePacked(f *testing.F) {
	oid := strings.Repeat("ab", 20)
	f.Add([]byte("# pack-refs with: peeled fully-peeled sorted \n" + oid + " refs/tags/v1\n^" + oid + "\n"))
	f.Add([]byte(oid + " refs/heads/x\n" + oid + " bad..name\n"))
	f.Add([]byte("^" + oid + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		refs, err := parsePacked(data, 40)
		if err != nil {
			return
		}
		for name, p := range refs {
			if len(p.oid) != 40 || !isHex([]byte(p.oid)) || strings.ContainsRune(name, '\n') {
				t.Fatalf("accepted %q -> %q", name, p.oid)
			}
		}
	})
}

// FuzzParseLoose: a loose ref file never panics the parser; an object
// name it accepts is lower-case hex of the right length.
func FuzzParseLoose(f *testing.F) {
	f.Add([]byte(strings.Repeat("AB", 20) + " x\n"))
	f.Add([]byte("ref: refs/heads/main\n"))
	f.Add([]byte("\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		oid, target := parseLoose(data, 40)
		if oid != "" && (target != "" || len(oid) != 40 || strings.ToLower(oid) != oid || !isHex([]byte(oid))) {
			t.Fatalf("parseLoose(%q) = %q, %q", data, oid, target)
		}
	})
}

// TestReadDuringPackRefs: while `git pack-refs --prune` moves loose refs
// into packed-refs, every in-process listing has every ref created
// before it started: loose refs are read before packed-refs, as git
// reads them.
func TestReadDuringPackRefs(t *testing.T) {
	f := getFixture(t)
	gitDir := f.copyRepo(t)
	name := func(i int) string { return fmt.Sprintf("refs/heads/d%d/b%d", i/50, i) }
	var created atomic.Int64
	known := map[string]bool{f.c1: true, f.c2: true, f.tag: true}
	stop := make(chan struct{})
	failed := make(chan string, 1)
	go func() {
		defer close(failed)
		for listings := 0; ; listings++ {
			select {
			case <-stop:
				return
			default:
			}
			n := int(created.Load())
			got, _, err := readFiles(gitDir, known, nil)
			if err != nil {
				failed <- err.Error()
				return
			}
			for i := range n {
				if got[name(i)] != f.c1 {
					failed <- fmt.Sprintf("listing %d: %s missing (%d refs created before it)", listings, name(i), n)
					return
				}
			}
		}
	}()
	for i := range 1000 {
		if i%50 == 49 {
			git(t, gitDir, "--git-dir="+gitDir, "pack-refs", "--all", "--prune")
		}
		writeFile(t, gitDir, name(i)+".lock", f.c1+"\n") // as git writes a ref
		path := filepath.Join(gitDir, filepath.FromSlash(name(i)))
		if err := os.Rename(path+".lock", path); err != nil {
			t.Fatal(err)
		}
		created.Add(1)
	}
	close(stop)
	if msg, ok := <-failed; ok {
		t.Fatal(msg)
	}
}
