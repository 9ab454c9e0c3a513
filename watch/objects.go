package watch

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// emptyTree is the object git (up to 2.47) knows without storing it: a ref
// to it resolves even when objects/ lacks it.
var emptyTree = map[int]string{
	40: "4b825dc642cb6eb9a060e54bf8d69288fbee4904",
	64: "6ef19b41225c5369f1c104d45d8d85efa9b057b53b14b4b9b939dd74decc5321",
}

// objectLookup answers "does this object exist" for git's loose objects,
// pack indexes (v1 and v2) and alternates, opening each index once and
// reading only the entries a binary search visits.
type objectLookup struct {
	root   string
	hexLen int
	dirs   []string // objects directories: root, then alternates
	packs  []*packIndex
	loaded bool
}

type packIndex struct {
	f      *os.File
	v2     bool
	fanout [256]uint32
}

func newObjectLookup(objectsDir string, hexLen int) *objectLookup {
	return &objectLookup{root: objectsDir, hexLen: hexLen}
}

func (o *objectLookup) close() {
	for _, p := range o.packs {
		_ = p.f.Close()
	}
}

func (o *objectLookup) has(oid string) (bool, error) {
	if oid == emptyTree[o.hexLen] {
		return true, nil
	}
	if !o.loaded {
		if err := o.load(); err != nil {
			return false, err
		}
	}
	for _, d := range o.dirs {
		if _, err := os.Lstat(filepath.Join(d, oid[:2], oid[2:])); err == nil {
			return true, nil
		}
	}
	want, err := hex.DecodeString(oid)
	if err != nil {
		return false, err
	}
	for _, p := range o.packs {
		ok, err := p.has(want)
		if err != nil {
			return false, err
		}
		if ok {
			return true, nil
		}
	}
	return false, nil
}

// load finds the objects directories (alternates are followed five deep,
// as git does) and opens their pack indexes that have a pack.
func (o *objectLookup) load() error {
	o.loaded = true
	seen := map[string]bool{}
	var add func(dir string, depth int) error
	add = func(dir string, depth int) error {
		if seen[dir] || depth > 5 {
			return nil
		}
		seen[dir] = true
		o.dirs = append(o.dirs, dir)
		if err := o.openPacks(dir); err != nil {
			return err
		}
		alts, err := readAlternates(dir)
		if err != nil {
			return err
		}
		for _, a := range alts {
			if err := add(a, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	return add(o.root, 0)
}

func readAlternates(objectsDir string) ([]string, error) {
	data, err := os.ReadFile(filepath.Join(objectsDir, "info", "alternates"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read alternates: %w", err)
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		if line[0] == '"' {
			return nil, fmt.Errorf("%w: quoted alternate %q", errNeedGit, line)
		}
		if !filepath.IsAbs(line) {
			line = filepath.Join(objectsDir, line)
		}
		out = append(out, filepath.Clean(line))
	}
	return out, nil
}

func (o *objectLookup) openPacks(objectsDir string) error {
	dir := filepath.Join(objectsDir, "pack")
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read packs: %w", err)
	}
	for _, e := range entries {
		base, ok := strings.CutSuffix(e.Name(), ".idx")
		if !ok {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, base+".pack")); err != nil {
			continue // git ignores an index without its pack
		}
		p, err := openPackIndex(filepath.Join(dir, e.Name()))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // removed by a repack meanwhile
			}
			return err
		}
		o.packs = append(o.packs, p)
	}
	return nil
}

var idxMagic = []byte{0xff, 't', 'O', 'c'}

func openPackIndex(path string) (*packIndex, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	p := &packIndex{f: f}
	head := make([]byte, 8+256*4)
	if _, err := io.ReadFull(bufio.NewReader(f), head); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("%w: pack index %s: %w", errNeedGit, path, err)
	}
	fan := head[:256*4]
	if bytes.Equal(head[:4], idxMagic) {
		if v := binary.BigEndian.Uint32(head[4:8]); v != 2 {
			_ = f.Close()
			return nil, fmt.Errorf("%w: pack index %s version %d", errNeedGit, path, v)
		}
		p.v2 = true
		fan = head[8:]
	}
	for i := range p.fanout {
		p.fanout[i] = binary.BigEndian.Uint32(fan[i*4:])
	}
	return p, nil
}

// has binary-searches the sorted object names of the index.
func (p *packIndex) has(want []byte) (bool, error) {
	lo := uint32(0)
	if want[0] > 0 {
		lo = p.fanout[want[0]-1]
	}
	hi := p.fanout[want[0]]
	buf := make([]byte, len(want))
	for lo < hi {
		mid := lo + (hi-lo)/2
		var off int64
		if p.v2 {
			off = 8 + 256*4 + int64(mid)*int64(len(want))
		} else {
			off = 256*4 + int64(mid)*int64(4+len(want)) + 4
		}
		if _, err := p.f.ReadAt(buf, off); err != nil {
			return false, fmt.Errorf("%w: pack index %s: %w", errNeedGit, p.f.Name(), err)
		}
		switch c := bytes.Compare(buf, want); {
		case c == 0:
			return true, nil
		case c < 0:
			lo = mid + 1
		default:
			hi = mid
		}
	}
	return false, nil
}
