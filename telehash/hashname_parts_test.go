package telehash

import "testing"

// HashnameFromParts gives telehash-js's hashname from one key and the
// intermediate digests of the others, whichever key is kept.
func TestHashnameFromParts(t *testing.T) {
	v := loadJSVectors(t)
	n := 0
	for _, h := range v.Hashnames {
		ims, err := Intermediates(h.Keys)
		if err != nil {
			t.Fatal(err)
		}
		for keep := range h.Keys {
			keys := map[string]string{keep: h.Keys[keep]}
			rest := map[string]string{}
			for c, im := range ims {
				if c != keep {
					rest[c] = im
				}
			}
			got, err := HashnameFromParts(keys, rest)
			if err != nil || got != h.Hashname {
				t.Fatalf("keep %s of %v: %s %v, want %s", keep, h.Keys, got, err, h.Hashname)
			}
			n++
		}
		if got, err := HashnameFromParts(h.Keys, nil); err != nil || got != h.Hashname {
			t.Fatalf("all keys: %s %v", got, err)
		}
	}
	if n < 4 {
		t.Fatalf("only %d combinations", n)
	}
	key := v.Hashnames[0].Keys["3a"]
	im := Base32Encode(make([]byte, 32))
	for _, c := range []struct{ keys, ims map[string]string }{
		{nil, nil},
		{map[string]string{"3a": key}, map[string]string{"3a": im}},
		{map[string]string{"3a": key}, map[string]string{"1a": "aaaa"}},
		{map[string]string{"3a": key}, map[string]string{"1a": "!!"}},
		{map[string]string{"3a": key}, map[string]string{"00": im}},
		{map[string]string{"3a": "aaaa"}, nil},
		{map[string]string{"1a": ""}, nil},
	} {
		if h, err := HashnameFromParts(c.keys, c.ims); err == nil {
			t.Errorf("HashnameFromParts(%v, %v) = %s, want an error", c.keys, c.ims, h)
		}
	}
}
