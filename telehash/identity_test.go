package telehash

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestIdentitySaveLoad(t *testing.T) {
	id := mustIdentity(t, "id")
	path := filepath.Join(t.TempDir(), "id.json")
	if err := id.Save(path); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode())
	}
	got, err := LoadIdentity(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Hashname() != id.Hashname() || got.keypair3a() != id.keypair3a() {
		t.Fatal("loaded identity differs")
	}
	// Saving over a world-readable file leaves it 0600.
	if runtime.GOOS != "windows" {
		os.Chmod(path, 0o644)
		if _, err := LoadIdentity(path); !errors.Is(err, ErrInsecurePermissions) || !strings.Contains(err.Error(), "chmod 600") {
			t.Fatalf("0644 load: %v", err)
		}
		if err := id.Save(path); err != nil {
			t.Fatal(err)
		}
		st, _ = os.Stat(path)
		if st.Mode().Perm() != 0o600 {
			t.Fatalf("mode after resave %v", st.Mode())
		}
	}
	if _, err := LoadIdentity(filepath.Join(t.TempDir(), "missing.json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing: %v", err)
	}
	if _, err := LoadIdentity(t.TempDir()); err == nil {
		t.Fatal("directory accepted")
	}
	if err := id.Save(filepath.Join(t.TempDir(), "no", "such", "dir", "id.json")); err == nil {
		t.Fatal("save into missing dir succeeded")
	}
}

// A telehash-js id.json (1a, 2a and 3a keys) keeps all keys, so the
// hashname is the one telehash-js computes.
func TestParseIdentityTelehashJS(t *testing.T) {
	const doc = `{"keys":{"1a":"a4dqobyha4dqobyha4dqobyha4dqobyha4","3a":"gaqsnsnjgcsku3sktphmeiozpc5aputu43hxwdxda47r6w33sjia"},
"secrets":{"3a":"%s"},"hashname":"%s"}`
	sec := Base32Encode(sha256Of("c"))
	id, err := ParseIdentity([]byte(strings.Replace(strings.Replace(doc, "%s", sec, 1), "%s", "kmpzgdkr7epfsvgypwj6d23xlp2s6dbvvhkvpg6lw34ccgvhx5vq", 1)))
	if err == nil {
		t.Fatalf("wrong hashname accepted: %s", id.Hashname())
	}
	id, err = ParseIdentity([]byte(strings.Replace(strings.Replace(doc, "%s", sec, 1), `,"hashname":"%s"`, "", 1)))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := HashnameFromBase32Keys(map[string]string{
		"1a": "a4dqobyha4dqobyha4dqobyha4dqobyha4",
		"3a": "gaqsnsnjgcsku3sktphmeiozpc5aputu43hxwdxda47r6w33sjia",
	})
	if id.Hashname() != want || len(id.CSIDs()) != 2 || id.Keys()["1a"] != "a4dqobyha4dqobyha4dqobyha4dqobyha4" {
		t.Fatalf("hashname %s want %s", id.Hashname(), want)
	}
	if id.Key(0x1a) == nil || id.Key(0x2a) != nil {
		t.Fatal("Key lookup")
	}
	data, _ := id.MarshalJSON()
	again, err := ParseIdentity(data)
	if err != nil || again.Hashname() != id.Hashname() {
		t.Fatalf("marshal round trip: %v", err)
	}
}

func TestParseIdentityErrors(t *testing.T) {
	id := mustIdentity(t, "a")
	other := mustIdentity(t, "b")
	good, _ := id.MarshalJSON()
	otherSec := Base32Encode(other.kp.Secret[:])
	for name, doc := range map[string]string{
		"not json":       `{`,
		"no 3a":          `{"keys":{},"secrets":{}}`,
		"bad csid":       `{"keys":{"3A":"aa"},"secrets":{}}`,
		"bad base32":     `{"keys":{"3a":"!!"},"secrets":{"3a":"aa"}}`,
		"short secret":   `{"keys":{"3a":"` + Base32Encode(id.kp.Public[:]) + `"},"secrets":{"3a":"aaaa"}}`,
		"wrong secret":   `{"keys":{"3a":"` + Base32Encode(id.kp.Public[:]) + `"},"secrets":{"3a":"` + otherSec + `"}}`,
		"secret no key":  `{"keys":{"3a":"` + Base32Encode(id.kp.Public[:]) + `"},"secrets":{"3a":"` + Base32Encode(id.kp.Secret[:]) + `","1a":"aa"}}`,
		"empty key":      `{"keys":{"3a":"` + Base32Encode(id.kp.Public[:]) + `","1a":""},"secrets":{"3a":"` + Base32Encode(id.kp.Secret[:]) + `"}}`,
		"wrong hashname": strings.Replace(string(good), string(id.Hashname()), string(other.Hashname()), 1),
	} {
		if _, err := ParseIdentity([]byte(doc)); !errors.Is(err, ErrInvalidIdentity) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := ParseIdentity(make([]byte, MaxIdentityFileSize+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversize: %v", err)
	}
}

func FuzzParseIdentity(f *testing.F) {
	id := mustIdentity(f, "fuzz-id")
	good, _ := id.MarshalJSON()
	f.Add(good)
	f.Add([]byte(`{"keys":{"1a":"aaaa"},"secrets":{}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := ParseIdentity(data)
		if err != nil {
			return
		}
		again, err := ParseIdentity(must(got.MarshalJSON()))
		if err != nil || again.Hashname() != got.Hashname() {
			t.Fatalf("re-parse: %v", err)
		}
	})
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}
