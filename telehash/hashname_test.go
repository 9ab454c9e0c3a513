package telehash

import (
	"errors"
	"testing"
)

func TestHashnameVectors(t *testing.T) {
	// Vectors from shared/notes/telehash.md, checked against telehash-js.
	tests := []struct {
		keys map[string]string
		want Hashname
	}{
		{map[string]string{
			"1a": "an7lbl5e6vk4ql6nblznjicn5rmf3lmzlm",
			"3a": "eg3fxjnjkz763cjfnhyabeftyf75m2s4gll3gvmuacegax5h6nia",
		}, "27ywx5e5ylzxfzxrhptowvwntqrd3jhksyxrfkzi6jfn64d3lwxa"},
		{map[string]string{
			"3a": "hp6yglmmqwcbw5hno37uauh6fn6dx5oj7s5vtapaifrur2jv6zha",
		}, "nzf4f6j7ylv53z3m4egrwltv2t2yks4rtpaimeg3avwqsoshqxba"},
	}
	for _, tt := range tests {
		got, err := HashnameFromBase32Keys(tt.keys)
		if err != nil || got != tt.want {
			t.Errorf("HashnameFromBase32Keys(%v) = %q, %v; want %q", tt.keys, got, err, tt.want)
		}
		// The same through intermediates.
		ims := map[CSID][32]byte{}
		for s, k := range tt.keys {
			c, _ := ParseCSID(s)
			kb, _ := Base32Decode(k)
			ims[c] = Intermediate(kb)
		}
		if got, _ := HashnameFromIntermediates(ims); got != tt.want {
			t.Errorf("HashnameFromIntermediates = %q, want %q", got, tt.want)
		}
		if _, err := ParseHashname(string(tt.want)); err != nil {
			t.Errorf("ParseHashname(%q): %v", tt.want, err)
		}
	}
}

func TestHashnameErrors(t *testing.T) {
	if _, err := HashnameFromKeys(nil); !errors.Is(err, ErrMalformed) {
		t.Errorf("no keys: %v", err)
	}
	if _, err := HashnameFromKeys(map[CSID][]byte{0: {1}}); !errors.Is(err, ErrMalformed) {
		t.Errorf("csid 0: %v", err)
	}
	if _, err := HashnameFromKeys(map[CSID][]byte{CS3a: nil}); !errors.Is(err, ErrMalformed) {
		t.Errorf("empty key: %v", err)
	}
	for _, s := range []string{"", "3", "3A", "00", "zz", "3a3"} {
		if _, err := ParseCSID(s); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseCSID(%q): %v", s, err)
		}
	}
	if c, err := ParseCSID("3a"); err != nil || c != CS3a || c.String() != "3a" {
		t.Errorf("ParseCSID(3a) = %v, %v", c, err)
	}
	for _, s := range []string{"", "abc", "27ywx5e5ylzxfzxrhptowvwntqrd3jhksyxrfkzi6jfn64d3lwx1", "27ywx5e5ylzxfzxrhptowvwntqrd3jhksyxrfkzi6jfn64d3lwxb"} {
		if _, err := ParseHashname(s); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseHashname(%q): %v", s, err)
		}
	}
	if h, err := ParseHashname("27YWX5E5YLZXFZXRHPTOWVWNTQRD3JHKSYXRFKZI6JFN64D3LWXA"); err != nil || h != "27ywx5e5ylzxfzxrhptowvwntqrd3jhksyxrfkzi6jfn64d3lwxa" {
		t.Errorf("upper-case hashname: %q, %v", h, err)
	}
	b, err := Hashname("27ywx5e5ylzxfzxrhptowvwntqrd3jhksyxrfkzi6jfn64d3lwxa").Bytes()
	if err != nil || len(b) != 32 {
		t.Errorf("Bytes: %x, %v", b, err)
	}
}
