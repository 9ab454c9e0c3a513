package telehash

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
)

// CSID identifies a cipher set (spec: e3x/cs/README.md "Cipher Set ID").
// 0x00 is never valid.
type CSID byte

// CS3a is the NaCl based cipher set (spec: e3x/cs/3a.md).
const CS3a CSID = 0x3a

// String returns the two lower-case hex digits used in JSON ("3a").
func (c CSID) String() string { return hex.EncodeToString([]byte{byte(c)}) }

// ParseCSID parses a two-hex-digit lower-case CSID such as "3a"
// (telehash-js hashname.isID). "00" is rejected (spec: "The 0x00 CSID is
// not allowed").
func ParseCSID(s string) (CSID, error) {
	if len(s) != 2 {
		return 0, fmt.Errorf("%w: csid %q is not two hex digits", ErrMalformed, s)
	}
	var b [1]byte
	if _, err := hex.Decode(b[:], []byte(s)); err != nil || hex.EncodeToString(b[:]) != s {
		return 0, fmt.Errorf("%w: csid %q is not lower-case hex", ErrMalformed, s)
	}
	if b[0] == 0 {
		return 0, fmt.Errorf("%w: csid 00 is invalid", ErrMalformed)
	}
	return CSID(b[0]), nil
}

// Hashname is the 52 character base32 form of a 32 byte hashname
// (spec: hashname.md).
type Hashname string

// HashnameLen is the length of a hashname string.
const HashnameLen = 52

// ParseHashname validates s as a hashname (52 base32 chars, 32 bytes) and
// returns it in canonical lower case.
func ParseHashname(s string) (Hashname, error) {
	if len(s) != HashnameLen {
		return "", fmt.Errorf("%w: hashname must be %d chars, got %d", ErrMalformed, HashnameLen, len(s))
	}
	b, err := Base32Decode(s)
	if err != nil {
		return "", fmt.Errorf("hashname: %w", err)
	}
	if len(b) != sha256.Size {
		return "", fmt.Errorf("%w: hashname decodes to %d bytes", ErrMalformed, len(b))
	}
	return Hashname(Base32Encode(b)), nil
}

// Bytes returns the 32 raw bytes of a valid hashname.
func (h Hashname) Bytes() ([]byte, error) {
	if _, err := ParseHashname(string(h)); err != nil {
		return nil, err
	}
	return Base32Decode(string(h))
}

// Intermediate returns the intermediate digest of a cipher set key, SHA-256
// of the key bytes (spec: hashname.md "Each CSK is hashed into intermediate
// digest values").
func Intermediate(key []byte) [32]byte { return sha256.Sum256(key) }

// HashnameFromIntermediates rolls up intermediate digests (spec: hashname.md
// "Final Rollup"): for each CSID ascending, roll = sha256(roll || csid) then
// roll = sha256(roll || intermediate), starting from an empty roll.
func HashnameFromIntermediates(ims map[CSID][32]byte) (Hashname, error) {
	if len(ims) == 0 {
		return "", fmt.Errorf("%w: no keys for hashname", ErrMalformed)
	}
	ids := make([]CSID, 0, len(ims))
	for id := range ims {
		if id == 0 {
			return "", fmt.Errorf("%w: csid 00 is invalid", ErrMalformed)
		}
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	var roll []byte
	for _, id := range ids {
		h := sha256.New()
		h.Write(roll)
		h.Write([]byte{byte(id)})
		roll = h.Sum(nil)
		im := ims[id]
		h.Reset()
		h.Write(roll)
		h.Write(im[:])
		roll = h.Sum(roll[:0])
	}
	return Hashname(Base32Encode(roll)), nil
}

// HashnameFromKeys computes the hashname of a set of cipher set keys
// (spec: hashname.md "Hashname Generation").
func HashnameFromKeys(keys map[CSID][]byte) (Hashname, error) {
	ims := make(map[CSID][32]byte, len(keys))
	for id, k := range keys {
		if len(k) == 0 {
			return "", fmt.Errorf("%w: empty key for csid %s", ErrMalformed, id)
		}
		if id == CS3a {
			if err := checkKey3a(k); err != nil {
				return "", err
			}
		}
		ims[id] = Intermediate(k)
	}
	return HashnameFromIntermediates(ims)
}

// HashnameFromBase32Keys computes the hashname of keys in link JSON form
// ({"3a":"base32 key",...}, spec: link.md "JSON").
func HashnameFromBase32Keys(keys map[string]string) (Hashname, error) {
	bin := make(map[CSID][]byte, len(keys))
	for s, v := range keys {
		id, err := ParseCSID(s)
		if err != nil {
			return "", err
		}
		k, err := Base32Decode(v)
		if err != nil {
			return "", fmt.Errorf("key %s: %w", s, err)
		}
		bin[id] = k
	}
	return HashnameFromKeys(bin)
}

// HashnameFromParts computes a hashname from some cipher set keys and
// the intermediate digests of the others (spec: hashname.md "The
// intermediate digest values may be used and exchanged directly instead
// of the original CSK"), both base32 by CSID as in link JSON. A CSID
// may not be in both maps; each intermediate must decode to 32 bytes.
func HashnameFromParts(keys, intermediates map[string]string) (Hashname, error) {
	ims := make(map[CSID][32]byte, len(keys)+len(intermediates))
	for s, v := range keys {
		id, err := ParseCSID(s)
		if err != nil {
			return "", err
		}
		k, err := Base32Decode(v)
		if err != nil {
			return "", fmt.Errorf("key %s: %w", s, err)
		}
		if len(k) == 0 {
			return "", fmt.Errorf("%w: empty key for csid %s", ErrMalformed, s)
		}
		if id == CS3a {
			if err := checkKey3a(k); err != nil {
				return "", err
			}
		}
		ims[id] = Intermediate(k)
	}
	for s, v := range intermediates {
		id, err := ParseCSID(s)
		if err != nil {
			return "", err
		}
		if _, dup := keys[s]; dup {
			return "", fmt.Errorf("%w: csid %s given as a key and as an intermediate", ErrMalformed, s)
		}
		im, err := Base32Decode(v)
		if err != nil {
			return "", fmt.Errorf("intermediate %s: %w", s, err)
		}
		if len(im) != sha256.Size {
			return "", fmt.Errorf("%w: intermediate %s is %d bytes, not %d", ErrMalformed, s, len(im), sha256.Size)
		}
		ims[id] = [32]byte(im)
	}
	return HashnameFromIntermediates(ims)
}

// Intermediates returns the base32 intermediate digests of keys in link
// JSON form ({"1a":"base32 key"} -> {"1a":"base32 sha256(key)"}).
func Intermediates(keys map[string]string) (map[string]string, error) {
	out := make(map[string]string, len(keys))
	for s, v := range keys {
		if _, err := ParseCSID(s); err != nil {
			return nil, err
		}
		k, err := Base32Decode(v)
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", s, err)
		}
		im := Intermediate(k)
		out[s] = Base32Encode(im[:])
	}
	return out, nil
}
