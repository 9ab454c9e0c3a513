package telehash

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
)

// MaxIdentityFileSize caps the identity file read by LoadIdentity.
const MaxIdentityFileSize = 64 * 1024

// IdentityFileMode is the permission Save gives the identity file.
const IdentityFileMode fs.FileMode = 0o600

// Identity is a local endpoint: its cipher set keys, secrets and hashname
// (spec: hashname.md, link.md "JSON"). Only cipher set 3a is used for
// crypto; keys and secrets of other cipher sets (telehash-js ids carry 1a
// and 2a too) are kept so the hashname and the saved file stay the same.
type Identity struct {
	keys     map[CSID][]byte
	secrets  map[CSID][]byte
	hashname Hashname
	kp       Keypair
}

// identityJSON is telehash-js's id.json format:
// {"keys":{"3a":b32},"secrets":{"3a":b32},"hashname":"..."}.
type identityJSON struct {
	Keys     map[string]string `json:"keys"`
	Secrets  map[string]string `json:"secrets"`
	Hashname string            `json:"hashname,omitempty"`
}

// GenerateIdentity creates a new 3a-only identity from rnd
// (crypto/rand.Reader in production).
func GenerateIdentity(rnd io.Reader) (*Identity, error) {
	kp, err := GenerateKeypair(rnd)
	if err != nil {
		return nil, err
	}
	return NewIdentity(map[CSID][]byte{CS3a: kp.Public[:]}, map[CSID][]byte{CS3a: kp.Secret[:]})
}

// NewIdentity builds an identity from keys and secrets by CSID. A 3a key
// and secret are required and must match; other cipher sets are kept
// opaque. The maps are copied.
func NewIdentity(keys, secrets map[CSID][]byte) (*Identity, error) {
	id := &Identity{keys: copyKeys(keys), secrets: copyKeys(secrets)}
	pub, sec := id.keys[CS3a], id.secrets[CS3a]
	if pub == nil || sec == nil {
		return nil, fmt.Errorf("%w: a 3a key and secret are required", ErrInvalidIdentity)
	}
	kp, err := KeypairFromSecret(sec)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidIdentity, err)
	}
	if !bytes.Equal(kp.Public[:], pub) {
		return nil, fmt.Errorf("%w: 3a secret does not match 3a key", ErrInvalidIdentity)
	}
	for csid := range id.secrets {
		if id.keys[csid] == nil {
			return nil, fmt.Errorf("%w: secret for %s has no key", ErrInvalidIdentity, csid)
		}
	}
	id.kp = *kp
	hn, err := HashnameFromKeys(id.keys)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidIdentity, err)
	}
	id.hashname = hn
	return id, nil
}

func copyKeys(m map[CSID][]byte) map[CSID][]byte {
	out := make(map[CSID][]byte, len(m))
	for k, v := range m {
		out[k] = append([]byte(nil), v...)
	}
	return out
}

// Hashname returns the identity's hashname.
func (id *Identity) Hashname() Hashname { return id.hashname }

// Key returns a copy of the public key for csid, or nil.
func (id *Identity) Key(csid CSID) []byte {
	if k, ok := id.keys[csid]; ok {
		return append([]byte(nil), k...)
	}
	return nil
}

// CSIDs returns the identity's cipher set ids in ascending order.
func (id *Identity) CSIDs() []CSID {
	out := make([]CSID, 0, len(id.keys))
	for c := range id.keys {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Keys returns the public keys in link JSON form ({"3a":"b32",...}, spec:
// link.md "JSON").
func (id *Identity) Keys() map[string]string {
	out := make(map[string]string, len(id.keys))
	for c, k := range id.keys {
		out[c.String()] = Base32Encode(k)
	}
	return out
}

// MarshalJSON encodes the identity, secrets included, in telehash-js's
// id.json format.
func (id *Identity) MarshalJSON() ([]byte, error) {
	j := identityJSON{Keys: id.Keys(), Secrets: map[string]string{}, Hashname: string(id.hashname)}
	for c, s := range id.secrets {
		j.Secrets[c.String()] = Base32Encode(s)
	}
	return json.Marshal(j)
}

// ParseIdentity decodes an id.json document and checks that the 3a
// secret matches its key and that any "hashname" matches the keys.
func ParseIdentity(data []byte) (*Identity, error) {
	if len(data) > MaxIdentityFileSize {
		return nil, fmt.Errorf("%w: identity of %d bytes", ErrTooLarge, len(data))
	}
	var j identityJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return nil, fmt.Errorf("%w: identity JSON: %v", ErrInvalidIdentity, err)
	}
	keys, err := decodeKeyMap(j.Keys)
	if err != nil {
		return nil, fmt.Errorf("%w: keys: %w", ErrInvalidIdentity, err)
	}
	secrets, err := decodeKeyMap(j.Secrets)
	if err != nil {
		return nil, fmt.Errorf("%w: secrets: %w", ErrInvalidIdentity, err)
	}
	id, err := NewIdentity(keys, secrets)
	if err != nil {
		return nil, err
	}
	if j.Hashname != "" && j.Hashname != string(id.hashname) {
		return nil, fmt.Errorf("%w: stored hashname %q does not match keys (%s)", ErrInvalidIdentity, j.Hashname, id.hashname)
	}
	return id, nil
}

func decodeKeyMap(m map[string]string) (map[CSID][]byte, error) {
	out := make(map[CSID][]byte, len(m))
	for s, v := range m {
		c, err := ParseCSID(s)
		if err != nil {
			return nil, err
		}
		b, err := Base32Decode(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s, err)
		}
		if len(b) == 0 {
			return nil, fmt.Errorf("%w: empty value for %s", ErrMalformed, s)
		}
		out[c] = b
	}
	return out, nil
}

// LoadIdentity reads an id.json file. It refuses a file that group or
// others may read or write (mode wider than 0600), returning an error
// wrapping ErrInsecurePermissions that names the fix, since the file
// holds secret keys. The check is skipped on Windows.
func LoadIdentity(path string) (*Identity, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("telehash: loading identity: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("telehash: loading identity: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrInvalidIdentity, path)
	}
	if perm := st.Mode().Perm(); runtime.GOOS != "windows" && perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %#o, must not be accessible by group or others (run: chmod 600 %s)",
			ErrInsecurePermissions, path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxIdentityFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("telehash: loading identity: %w", err)
	}
	id, err := ParseIdentity(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return id, nil
}

// Save writes the identity to path atomically (temporary file in the same
// directory, then rename) with mode 0600, whatever the mode of a file it
// replaces.
func (id *Identity) Save(path string) (err error) {
	data, err := id.MarshalJSON()
	if err != nil {
		return err
	}
	data = append(data, '\n')
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".id-*.json")
	if err != nil {
		return fmt.Errorf("telehash: saving identity: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = tmp.Chmod(IdentityFileMode); err != nil {
		if runtime.GOOS != "windows" {
			return fmt.Errorf("telehash: saving identity: %w", err)
		}
		err = nil
	}
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("telehash: saving identity: %w", err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("telehash: saving identity: %w", err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("telehash: saving identity: %w", err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("telehash: saving identity: %w", err)
	}
	return nil
}
