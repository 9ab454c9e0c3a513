package gitcfg

import (
	"strconv"
	"testing"
)

func TestParseInt(t *testing.T) {
	for v, want := range map[string]int64{
		"0": 0, "10": 10, "-3": -3, "1k": 1024, "10m": 10 << 20, "10M": 10 << 20,
		"2g": 2 << 30, " 7 ": 7, "+5k": 5 << 10, "8589934591g": 8589934591 << 30,
	} {
		if got, err := ParseInt(v); err != nil || got != want {
			t.Errorf("ParseInt(%q) = %d, %v; want %d", v, got, err, want)
		}
	}
	for _, v := range []string{"", "m", "1.5m", "10mb", "ten", "8589934592g", "0x10", "-8589934593g"} {
		if got, err := ParseInt(v); err == nil {
			t.Errorf("ParseInt(%q) = %d, want an error", v, got)
		}
	}
}

// FuzzParseInt: git integers from the configuration never panic, and a
// value read back from its decimal form is the same.
func FuzzParseInt(f *testing.F) {
	for _, s := range []string{"10m", "-1k", "0", "9223372036854775807", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseInt(s)
		if err != nil {
			return
		}
		if m, err := ParseInt(fmtInt(n)); err != nil || m != n {
			t.Fatalf("%q read %d; its decimal form read %d, %v", s, n, m, err)
		}
	})
}

func fmtInt(n int64) string { return strconv.FormatInt(n, 10) }
