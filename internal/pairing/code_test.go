package pairing

import (
	"bufio"
	"crypto/rand"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/git-remote-daemon/git-remote-daemon/internal/thnode"
	"github.com/git-remote-daemon/git-remote-daemon/telehash"
)

func testAddr(t testing.TB, paths ...string) thnode.Addr {
	t.Helper()
	id, err := telehash.GenerateIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	a := thnode.Addr{Hashname: id.Hashname(), Keys: id.Keys()}
	for _, p := range paths {
		a.Paths = append(a.Paths, netip.MustParseAddrPort(p))
	}
	return a
}

func TestCodeRoundTrip(t *testing.T) {
	for _, paths := range [][]string{
		{"127.0.0.1:42424"},
		{"192.168.1.20:1", "10.0.0.1:65535", "127.0.0.1:4242"},
	} {
		a := testAddr(t, paths...)
		var secret [SecretSize]byte
		copy(secret[:], "0123456789abcdef")
		c, err := NewCode(a, secret)
		if err != nil {
			t.Fatal(err)
		}
		s := c.String()
		if !strings.HasPrefix(s, CodePrefix) || strings.ToLower(s) != s {
			t.Fatalf("code %q", s)
		}
		if len(paths) == 1 && len(s) != 97 {
			t.Errorf("code of one path has %d characters, want 97: %s", len(s), s)
		}
		for _, spelling := range []string{s, strings.ToUpper(s), "  " + s + "\n"} {
			got, err := ParseCode(spelling)
			if err != nil {
				t.Fatalf("ParseCode(%q): %v", spelling, err)
			}
			if !reflect.DeepEqual(got, c) {
				t.Fatalf("ParseCode(%q) = %+v, want %+v", spelling, got, c)
			}
		}
		back, err := c.Addr()
		if err != nil || back.String() != a.String() {
			t.Fatalf("Addr() = %v, %v; want %v", back, err, a)
		}
	}
}

func TestNewCodeNeedsAPath(t *testing.T) {
	var secret [SecretSize]byte
	for _, paths := range [][]string{nil, {"0.0.0.0:4242"}, {"[::1]:4242"}} {
		if c, err := NewCode(testAddr(t, paths...), secret); err == nil {
			t.Errorf("NewCode with paths %v = %v, want an error", paths, c)
		}
	}
}

func TestParseCodeErrors(t *testing.T) {
	var secret [SecretSize]byte
	good, err := NewCode(testAddr(t, "127.0.0.1:4242"), secret)
	if err != nil {
		t.Fatal(err)
	}
	s := good.String()
	// every single-character typo is caught by the checksum
	typos := 0
	for i := len(CodePrefix); i < len(s); i++ {
		b := []byte(s)
		if b[i] == 'a' {
			b[i] = 'b'
		} else {
			b[i] = 'a'
		}
		if _, err := ParseCode(string(b)); err == nil {
			t.Errorf("typo at %d accepted", i)
		} else {
			typos++
		}
	}
	zeroPort := good
	zeroPort.Paths = []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:0")}
	for _, bad := range []string{
		"", "grd1-", "grd2-" + s[5:], s[5:], s[:len(s)-1], s + "a", s + "aa", s[:40],
		"grd1-" + strings.Repeat("a", 2000), s[:20] + "-" + s[20:], s[:20] + "1" + s[21:],
		zeroPort.String(),
	} {
		if c, err := ParseCode(bad); err == nil {
			t.Errorf("ParseCode(%q) = %+v, want an error", bad, c)
		} else if !errors.Is(err, ErrBadCode) {
			t.Errorf("ParseCode(%q): %v does not wrap ErrBadCode", bad, err)
		}
	}
}

// FuzzParseCode checks that ParseCode never panics and that a code it
// accepts renders back to itself (in lower case, trimmed).
func FuzzParseCode(f *testing.F) {
	var secret [SecretSize]byte
	for _, paths := range [][]string{{"127.0.0.1:4242"}, {"10.1.2.3:1", "127.0.0.1:2"}} {
		c, err := NewCode(testAddr(f, paths...), secret)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(c.String())
	}
	f.Add("grd1-")
	f.Add("grd1-aaaa")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCode(s)
		if err != nil {
			if !errors.Is(err, ErrBadCode) {
				t.Fatalf("error %v does not wrap ErrBadCode", err)
			}
			return
		}
		if got := c.String(); got != strings.ToLower(strings.TrimSpace(s)) {
			t.Fatalf("ParseCode(%q).String() = %q", s, got)
		}
		if _, err := c.Addr(); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzReadMessage feeds arbitrary input to the pair service's decoder.
func FuzzReadMessage(f *testing.F) {
	f.Add(`{"v":1,"nonce":"AAAAAAAAAAAAAAAAAAAAAA==","proof":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","url":"th::x"}` + "\n")
	f.Add(`{"ok":true,"name":"alice"}` + "\n")
	f.Add(strings.Repeat("{", 5000) + "\n")
	f.Fuzz(func(t *testing.T, in string) {
		var q joinRequest
		if err := readMessage(bufio.NewReaderSize(strings.NewReader(in), 512), &q); err == nil {
			_ = q.check()
		}
		var r joinReply
		_ = readMessage(bufio.NewReaderSize(strings.NewReader(in), 512), &r)
	})
}

func TestSanitize(t *testing.T) {
	for in, want := range map[string]string{
		"Alice Example": "alice-example", "  bob ": "bob", "José": "jos", "***": "",
		"a..b--c": "a-b-c", strings.Repeat("x", 40): strings.Repeat("x", 32), "-lead": "lead",
	} {
		if got := Sanitize(in); got != want {
			t.Errorf("Sanitize(%q) = %q, want %q", in, got, want)
		}
	}
}
