package watch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// errNeedGit is wrapped when the in-process reader cannot answer with
// git's certainty (a reftable repository, an object it cannot find, an
// alternates file it cannot parse): the caller asks git.
var errNeedGit = errors.New("ask git")

// symrefMaxDepth is git's SYMREF_MAXDEPTH: the raw reads one resolution
// may make.
const symrefMaxDepth = 5

// Read lists the refs of the repository at gitDir exactly as
// `git for-each-ref --format='%(objectname) %(refname)'` does (see
// Snapshot), but in process for the files backend: no git is started.
// It falls back to git for what it cannot read itself (reftable, an
// object it cannot find). Like git, it requires HEAD, refs/ and objects/
// (else the error wraps ErrNoRepository).
func Read(ctx context.Context, gitDir string) (Refs, error) {
	if !isRepo(gitDir) {
		return nil, fmt.Errorf("%s: %w", gitDir, ErrNoRepository)
	}
	refs, _, _, err := readRefs(ctx, gitDir, nil)
	return refs, err
}

// readRefs is Read; it also returns the stamps of the files and
// directories whose change means the refs may have changed, and takes
// the objects already known to exist.
//
// locked reports a ref transaction in progress (a ref's or packed-refs'
// lock file seen): git commits a transaction's refs one file at a time,
// so the listing may hold some of its updates and not others.
func readRefs(ctx context.Context, gitDir string, known map[string]bool) (refs Refs, st stamps, locked bool, err error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, false, err
	}
	st = stamps{}
	st.add(filepath.Join(gitDir, "reftable"))
	// tables.list only matters once reftable/ exists, whose appearing
	// moves its own stamp: one stat less per check of each repository.
	if st[filepath.Join(gitDir, "reftable")].exists {
		st.add(filepath.Join(gitDir, "reftable", "tables.list"))
	}
	refs, locked, err = readFiles(gitDir, known, st)
	if errors.Is(err, errNeedGit) {
		refs, err = Snapshot(ctx, gitDir)
	}
	if err != nil {
		return nil, nil, false, err
	}
	return refs, st, locked, nil
}

// repoFormat is what the repository's config says about its storage.
type repoFormat struct {
	hexLen  int  // 40 (sha1) or 64 (sha256)
	reftype bool // refs not in files (reftable)
}

// readFormat reads extensions.objectFormat and extensions.refStorage from
// gitDir/config, the only file git reads them from (no includes).
func readFormat(gitDir string) (repoFormat, error) {
	f := repoFormat{hexLen: 40}
	data, err := os.ReadFile(filepath.Join(gitDir, "config"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return f, err
	}
	section := ""
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "[") {
			end := strings.IndexByte(line, ']')
			if end < 0 {
				return f, fmt.Errorf("%w: config section %q", errNeedGit, line)
			}
			section = strings.ToLower(strings.TrimSpace(line[1:end]))
			line = strings.TrimSpace(line[end+1:])
		}
		if section != "extensions" || line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		key, val, _ := strings.Cut(line, "=")
		key = strings.ToLower(strings.TrimSpace(key))
		val = strings.ToLower(strings.Trim(strings.TrimSpace(val), `"`))
		switch key {
		case "refstorage":
			f.reftype = val != "files"
		case "objectformat":
			switch val {
			case "sha1":
			case "sha256":
				f.hexLen = 64
			default:
				return f, fmt.Errorf("%w: object format %q", errNeedGit, val)
			}
		}
	}
	if fi, err := os.Stat(filepath.Join(gitDir, "reftable")); err == nil && fi.IsDir() {
		f.reftype = true
	}
	return f, nil
}

// readFiles reads loose refs and packed-refs the way git's files backend
// does (refs/files-backend.c loose_fill_ref_dir and the overlay of loose
// over packed refs, refs/packed-backend.c, as of git 2.39-2.47):
//   - loose refs are the files below refs/, skipping names that start
//     with "." or end in ".lock"; a loose file hides the packed ref of the
//     same name even when it is broken;
//   - a ref whose name is malformed, whose file does not parse, whose
//     symbolic chain does not end in an object name within five reads,
//     or whose object is null is skipped (git warns "ignoring broken ref");
//   - symbolic refs below refs/ are listed with the object they resolve
//     to; HEAD and other top-level files are not refs/ and not listed;
//   - a packed tag lists its own object name, not its peeled "^" line;
//   - a ref whose object is missing is skipped by git: here the listing
//     is handed to git instead (errNeedGit), so both always agree.
func readFiles(gitDir string, known map[string]bool, st stamps) (Refs, bool, error) {
	refs, r, err := readFilesWith(gitDir, known, st)
	return refs, r != nil && r.locked, err
}

func readFilesWith(gitDir string, known map[string]bool, st stamps) (Refs, *refReader, error) {
	format, err := readFormat(gitDir)
	if err != nil {
		return nil, nil, err
	}
	if format.reftype {
		return nil, nil, fmt.Errorf("%w: reftable", errNeedGit)
	}
	r := &refReader{gitDir: gitDir, hexLen: format.hexLen}
	// Loose refs first, then packed-refs, as git does: a ref that
	// `git pack-refs --prune` moves meanwhile is then in one or the other.
	loose := map[string]rawRef{}
	if err := r.walk("refs", loose, st); err != nil {
		return nil, nil, err
	}
	st.add(filepath.Join(gitDir, "packed-refs"))
	if _, err := os.Lstat(filepath.Join(gitDir, "packed-refs.lock")); err == nil {
		r.locked = true
	}
	if r.packed, err = r.readPacked(); err != nil {
		return nil, nil, err
	}
	out := Refs{}
	for name, p := range r.packed {
		if _, shadowed := loose[name]; !shadowed && p.valid {
			out[name] = p.oid
		}
	}
	for name, raw := range loose {
		if raw.broken {
			continue
		}
		oid, err := r.finish(raw, name)
		if err != nil {
			return nil, nil, err
		}
		if oid != "" {
			out[name] = oid
		}
	}
	objs := newObjectLookup(filepath.Join(gitDir, "objects"), format.hexLen)
	defer objs.close()
	for name, oid := range out {
		if known[oid] {
			continue
		}
		ok, err := objs.has(oid)
		if err != nil {
			return nil, nil, err
		}
		if !ok {
			return nil, nil, fmt.Errorf("%w: %s points to %s, not found in process", errNeedGit, name, oid)
		}
	}
	return out, r, nil
}

type packedRef struct {
	oid   string
	valid bool // the name passes check_refname_format
}

type refReader struct {
	gitDir string
	hexLen int
	packed map[string]packedRef
	locked bool // a lock file of a ref or of packed-refs was seen
}

// walk reads the loose refs below dir (a ref name prefix such as
// "refs/heads") into loose.
func (r *refReader) walk(dir string, loose map[string]rawRef, st stamps) error {
	path := filepath.Join(r.gitDir, filepath.FromSlash(dir))
	st.add(path)
	entries, err := os.ReadDir(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotDir) {
			return nil // raced with a deletion, or no refs/ at all
		}
		return fmt.Errorf("read refs: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasSuffix(name, ".lock") {
			r.locked = true
			continue
		}
		if name[0] == '.' {
			continue
		}
		ref := dir + "/" + name
		isDir := e.IsDir()
		if e.Type()&fs.ModeSymlink != 0 { // git follows links here
			if fi, err := os.Stat(filepath.Join(path, name)); err == nil {
				isDir = fi.IsDir()
			}
		}
		if isDir {
			if err := r.walk(ref, loose, st); err != nil {
				return err
			}
			continue
		}
		if !checkRefname(ref, true) {
			loose[ref] = rawRef{broken: true}
			continue
		}
		raw, err := r.readRaw(ref)
		if err != nil {
			return err
		}
		loose[ref] = raw
	}
	return nil
}

// rawRef is one ref as read, not followed.
type rawRef struct {
	oid, target string
	packed      bool // not a loose ref (any more): packed-refs has it, if anyone
	broken      bool // does not parse
}

// finish resolves a loose ref read before packed-refs was: "" when it is
// broken.
func (r *refReader) finish(raw rawRef, name string) (string, error) {
	oid := raw.oid
	switch {
	case raw.packed:
		oid = r.packed[name].oid
	case raw.target != "":
		if !checkRefname(raw.target, true) {
			return "", nil
		}
		return r.resolve(raw.target, symrefMaxDepth-1)
	}
	if oid == strings.Repeat("0", r.hexLen) {
		return "", nil // git: "null_oid ... repo corruption"
	}
	return oid, nil
}

// resolve follows ref to an object name like git's
// refs_resolve_ref_unsafe(RESOLVE_REF_READING), in at most reads raw
// reads: "" when it is broken.
func (r *refReader) resolve(ref string, reads int) (string, error) {
	for i := 0; i < reads; i++ {
		raw, err := r.readRaw(ref)
		if err != nil || raw.broken {
			return "", err
		}
		if raw.target == "" {
			return r.finish(raw, ref)
		}
		if !checkRefname(raw.target, true) {
			return "", nil
		}
		ref = raw.target
	}
	return "", nil
}

// readRaw reads one ref without following it (files_read_raw_ref).
func (r *refReader) readRaw(ref string) (rawRef, error) {
	path := filepath.Join(r.gitDir, filepath.FromSlash(ref))
	fi, err := os.Lstat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotDir) {
			return rawRef{packed: true}, nil
		}
		return rawRef{}, fmt.Errorf("read ref %s: %w", ref, err)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		if link, err := os.Readlink(path); err == nil && strings.HasPrefix(link, "refs/") && checkRefname(link, false) {
			return rawRef{target: link}, nil
		}
	}
	if fi.IsDir() {
		return rawRef{packed: true}, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return rawRef{packed: true}, nil // removed since the Lstat
		}
		if errors.Is(err, errIsDir) {
			return rawRef{broken: true}, nil
		}
		return rawRef{}, fmt.Errorf("read ref %s: %w", ref, err)
	}
	oid, target := parseLoose(data, r.hexLen)
	return rawRef{oid: oid, target: target, broken: oid == "" && target == ""}, nil
}

// parseLoose parses a loose ref file (parse_loose_ref_contents after
// strbuf_rtrim): "ref: <target>" or an object name followed by nothing
// or white space. Both results are empty when it does not parse.
func parseLoose(data []byte, hexLen int) (oid, target string) {
	data = bytes.TrimRight(data, gitSpace)
	if i := bytes.IndexByte(data, 0); i >= 0 { // git reads a C string
		data = data[:i]
	}
	if rest, ok := bytes.CutPrefix(data, []byte("ref:")); ok {
		return "", string(bytes.TrimLeft(rest, gitSpace))
	}
	if len(data) < hexLen || !isHex(data[:hexLen]) {
		return "", ""
	}
	if len(data) > hexLen && !bytes.ContainsRune([]byte(gitSpace), rune(data[hexLen])) {
		return "", ""
	}
	return strings.ToLower(string(data[:hexLen])), ""
}

// gitSpace is git's isspace (sane_ctype): not \v or \f.
const gitSpace = " \t\n\r"

func isHex(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}
