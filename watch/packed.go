package watch

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

var (
	errNotDir = syscall.ENOTDIR
	errIsDir  = syscall.EISDIR
)

// readPacked reads gitDir/packed-refs (refs/packed-backend.c). A line git
// would die on is an error here too.
func (r *refReader) readPacked() (map[string]packedRef, error) {
	data, err := os.ReadFile(filepath.Join(r.gitDir, "packed-refs"))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("read packed-refs: %w", err)
	}
	return parsePacked(data, r.hexLen)
}

// parsePacked parses the packed-refs format: an optional
// "# pack-refs with: <traits>" header line, then "<oid> <refname>" lines,
// each optionally followed by a "^<peeled oid>" line.
func parsePacked(data []byte, hexLen int) (map[string]packedRef, error) {
	refs := map[string]packedRef{}
	n := 0
	bad := func(what string) error {
		return fmt.Errorf("packed-refs line %d: %s", n, what)
	}
	if len(data) > 0 && data[0] == '#' {
		n++
		line, rest, ok := bytes.Cut(data, []byte{'\n'})
		if !ok {
			return nil, bad("unterminated header")
		}
		if !bytes.HasPrefix(line, []byte("# pack-refs with:")) {
			return nil, bad("unexpected header")
		}
		data = rest
	}
	afterRef := false
	for len(data) > 0 {
		n++
		if afterRef && data[0] == '^' && len(data) >= hexLen+2 {
			if !isHex(data[1:hexLen+1]) || data[hexLen+1] != '\n' {
				return nil, bad("malformed peeled line")
			}
			data = data[hexLen+2:]
			afterRef = false
			continue
		}
		if len(data) < hexLen+2 || !isHex(data[:hexLen]) || !strings.ContainsRune(gitSpace, rune(data[hexLen])) {
			return nil, bad("malformed ref line")
		}
		oid := strings.ToLower(string(data[:hexLen]))
		name, rest, ok := bytes.Cut(data[hexLen+1:], []byte{'\n'})
		if !ok {
			return nil, bad("unterminated line")
		}
		ref := string(name)
		if !checkRefname(ref, true) && !refnameIsSafe(ref) {
			return nil, bad(fmt.Sprintf("dangerous refname %q", ref))
		}
		refs[ref] = packedRef{oid: oid, valid: checkRefname(ref, true)}
		data = rest
		afterRef = true
	}
	return refs, nil
}

// checkRefname is git's check_refname_format (refs.c), with
// REFNAME_ALLOW_ONELEVEL when oneLevel is set.
func checkRefname(ref string, oneLevel bool) bool {
	if ref == "@" || ref == "" {
		return false
	}
	components := strings.Split(ref, "/")
	for _, c := range components {
		if c == "" || c[0] == '.' || strings.HasSuffix(c, ".lock") {
			return false
		}
		last := byte(0)
		for i := 0; i < len(c); i++ {
			ch := c[i]
			switch {
			case ch < 0x20 || ch == 0x7f:
				return false
			case strings.IndexByte(" :?[\\^~*", ch) >= 0:
				return false
			case ch == '.' && last == '.':
				return false
			case ch == '{' && last == '@':
				return false
			}
			last = ch
		}
	}
	if strings.HasSuffix(ref, ".") {
		return false
	}
	return oneLevel || len(components) >= 2
}

// refnameIsSafe is git's refname_is_safe: a name git refuses to even
// report as broken (it dies instead).
func refnameIsSafe(ref string) bool {
	if rest, ok := strings.CutPrefix(ref, "refs/"); ok {
		for _, c := range strings.Split(rest, "/") {
			if c == "." || c == ".." {
				return false
			}
		}
		return !strings.HasPrefix(rest, "/") && !strings.Contains(rest, "//")
	}
	for i := 0; i < len(ref); i++ {
		if !('A' <= ref[i] && ref[i] <= 'Z' || ref[i] == '_') {
			return false
		}
	}
	return ref != ""
}
