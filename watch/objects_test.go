package watch

import (
	"bytes"
	"crypto/sha1"
	"encoding/binary"
	"os"
	"path/filepath"
	"sort"
	"testing"
)

// makeIdx builds a version 2 pack index of names (20-byte object names).
func makeIdx(names [][]byte) []byte {
	sort.Slice(names, func(i, j int) bool { return bytes.Compare(names[i], names[j]) < 0 })
	var b bytes.Buffer
	b.Write(idxMagic)
	_ = binary.Write(&b, binary.BigEndian, uint32(2))
	for i := range 256 {
		n := 0
		for _, name := range names {
			if int(name[0]) <= i {
				n++
			}
		}
		_ = binary.Write(&b, binary.BigEndian, uint32(n))
	}
	for _, name := range names {
		b.Write(name)
	}
	return b.Bytes()
}

// FuzzPackIndex: a pack index of any content never panics the lookup
// (a damaged one makes the listing ask git), and a well-formed one finds
// exactly its objects.
func FuzzPackIndex(f *testing.F) {
	f.Add([]byte("a"), []byte("b"), []byte{0x01, 0xff})
	f.Add([]byte(""), []byte("x"), []byte{})
	f.Fuzz(func(t *testing.T, a, b, junk []byte) {
		ha, hb := sha1.Sum(a), sha1.Sum(b)
		dir := t.TempDir()
		for i, data := range [][]byte{makeIdx([][]byte{ha[:], hb[:]}), junk, append(makeIdx([][]byte{ha[:]})[:8+256*4], junk...)} {
			path := filepath.Join(dir, "p.idx")
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			p, err := openPackIndex(path)
			if err != nil {
				continue
			}
			okA, errA := p.has(ha[:])
			other := sha1.Sum(append([]byte("other"), a...))
			okO, errO := p.has(other[:])
			_ = p.f.Close()
			if i == 0 && (errA != nil || errO != nil || !okA || (okO && other != hb)) {
				t.Fatalf("well-formed index: has(a) = %v, %v; has(other) = %v, %v", okA, errA, okO, errO)
			}
		}
	})
}

// FuzzReadFormat: any config never panics the extensions reader; an
// unknown object format or ref storage never reads in process.
func FuzzReadFormat(f *testing.F) {
	f.Add("[core]\n\trepositoryformatversion = 1\n[extensions]\n\tobjectFormat = sha256\n")
	f.Add("[extensions] refStorage = reftable\n")
	f.Add("[extensions\n")
	f.Fuzz(func(t *testing.T, config string) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "config"), []byte(config), 0o644); err != nil {
			t.Fatal(err)
		}
		format, err := readFormat(dir)
		if err == nil && format.hexLen != 40 && format.hexLen != 64 {
			t.Fatalf("hexLen %d", format.hexLen)
		}
	})
}
