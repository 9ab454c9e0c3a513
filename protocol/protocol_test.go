package protocol

import (
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

const (
	sha1 = "0123456789abcdef0123456789abcdef01234567"
	sha2 = "89abcdef0123456789abcdef0123456789abcdef"
	zero = "0000000000000000000000000000000000000000"
	s256 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		line string
		msg  Message
	}{
		{"CONNECTED origin", Connected{Remote: "origin"}},
		{"DISCONNECTED my-remote", Disconnected{Remote: "my-remote"}},
		{"CHANGED origin " + sha1, Changed{Remote: "origin", SHAs: []string{sha1}}},
		{"CHANGED o " + sha1 + " " + sha2 + " " + zero, Changed{Remote: "o", SHAs: []string{sha1, sha2, zero}}},
		{"CHANGED o " + s256, Changed{Remote: "o", SHAs: []string{s256}}},
		{"STATUS origin fetched 3 refs", Status{Remote: "origin", Text: "fetched 3 refs"}},
		{"STATUS origin", Status{Remote: "origin"}},
		{"ERROR * unknown message \"FOO\"", Error{Remote: Daemon, Text: `unknown message "FOO"`}},
		{"ERROR a/b fatal: ünïcode", Error{Remote: "a/b", Text: "fatal: ünïcode"}},
		{"PAUSE", Pause{}},
		{"RESUME", Resume{}},
		{"RELOAD", Reload{}},
		{"PUSH origin", Push{Remote: "origin"}},
		{"PUSH -", Push{Remote: "-"}},
	} {
		got, err := Parse(tc.line)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.line, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.msg) {
			t.Errorf("Parse(%q) = %#v, want %#v", tc.line, got, tc.msg)
		}
		if s := tc.msg.String(); s != tc.line {
			t.Errorf("%#v.String() = %q, want %q", tc.msg, s, tc.line)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, line := range []string{
		"", "FOO", "pause", "PAUSE now", "PAUSE ", "RESUME x", "RELOAD 1",
		"PUSH", "PUSH ", "PUSH a b", "PUSH a\tb", "CONNECTED",
		"CHANGED origin", "CHANGED origin ", "CHANGED origin xyz",
		"CHANGED origin " + strings.ToUpper(sha1), "CHANGED origin " + sha1 + " ",
		"CHANGED  " + sha1, "STATUS", "STATUS  text", "ERROR origin two  spaces",
		"PUSH origin\r", "PUSH \x00", "STATUS origin ",
		strings.Repeat("A", MaxLineLength+1),
	} {
		if m, err := Parse(line); err == nil {
			t.Errorf("Parse(%q) = %#v, want an error", clip(line), m)
		} else if !errors.Is(err, ErrMalformed) {
			t.Errorf("Parse(%q) error %v does not wrap ErrMalformed", clip(line), err)
		}
	}
}

func TestParseCommand(t *testing.T) {
	for _, line := range []string{"PAUSE", "RESUME", "RELOAD", "PUSH origin"} {
		if _, err := ParseCommand(line); err != nil {
			t.Errorf("ParseCommand(%q): %v", line, err)
		}
	}
	for _, line := range []string{"CONNECTED origin", "CHANGED origin " + sha1, "STATUS o x", "ERROR o x"} {
		if _, err := ParseCommand(line); err == nil {
			t.Errorf("ParseCommand(%q) accepted an emitted message", line)
		}
	}
}

func TestOneLine(t *testing.T) {
	for in, want := range map[string]string{
		"a\nb":             "a b",
		"  lead  trail \n": "lead trail",
		"fatal: x\r\n\r\n": "fatal: x",
		"tab\there":        "tab here",
		"":                 "",
	} {
		if got := OneLine(in); got != want {
			t.Errorf("OneLine(%q) = %q, want %q", in, got, want)
		}
	}
	long := OneLine(strings.Repeat("é", MaxLineLength))
	if len(long) > MaxLineLength || !strings.HasSuffix(long, "é") {
		t.Errorf("OneLine of a long text: %d bytes, ends %q", len(long), long[len(long)-4:])
	}
	// Text that is not in normal form still yields a parseable line.
	m := Error{Remote: "o", Text: "fatal: a\nhint: b"}
	got, err := Parse(m.String())
	if err != nil || got.(Error).Text != "fatal: a hint: b" {
		t.Errorf("Parse(%q) = %#v, %v", m.String(), got, err)
	}
}

func TestReaderLimit(t *testing.T) {
	r := NewReaderLimit(strings.NewReader("12345678\r\n123456789\n"+strings.Repeat("y", 1<<20)+"\nok"), 8)
	for i, want := range []string{"12345678", "<too long>", "<too long>", "ok"} {
		line, err := r.ReadLine()
		if errors.Is(err, ErrLineTooLong) {
			line, err = "<too long>", nil
		}
		if err != nil || line != want {
			t.Fatalf("line %d: %q, %v; want %q", i+1, line, err, want)
		}
	}
	if _, err := r.ReadLine(); !errors.Is(err, io.EOF) {
		t.Fatalf("at the end: %v", err)
	}
}

func TestReader(t *testing.T) {
	in := "PAUSE\r\nRESUME\n" + strings.Repeat("x", MaxLineLength+10) + "\nPUSH o\nlast"
	r := NewReader(strings.NewReader(in))
	var got []string
	for {
		line, err := r.ReadLine()
		if errors.Is(err, io.EOF) {
			break
		}
		if errors.Is(err, ErrLineTooLong) {
			got = append(got, "<too long at "+string(rune('0'+r.Line()))+">")
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, line)
	}
	want := []string{"PAUSE", "RESUME", "<too long at 3>", "PUSH o", "last"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("lines = %q, want %q", got, want)
	}
}

func TestWriterWholeLines(t *testing.T) {
	var sb strings.Builder
	w := NewWriter(&sb)
	done := make(chan bool)
	for i := 0; i < 8; i++ {
		go func() {
			for j := 0; j < 100; j++ {
				_ = w.Send(Changed{Remote: "origin", SHAs: []string{sha1, sha2}})
			}
			done <- true
		}()
	}
	for i := 0; i < 8; i++ {
		<-done
	}
	lines := strings.Split(strings.TrimSuffix(sb.String(), "\n"), "\n")
	if len(lines) != 800 {
		t.Fatalf("%d lines, want 800", len(lines))
	}
	for _, l := range lines {
		if _, err := Parse(l); err != nil {
			t.Fatalf("interleaved line %q: %v", l, err)
		}
	}
}

// FuzzParse checks that Parse never panics and that every message it
// accepts renders back to the very same line.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"PAUSE", "PUSH origin", "CHANGED o " + sha1 + " " + zero,
		"STATUS o a b", "ERROR * x", "RELOAD", "CONNECTED x", "PUSH \xff", "CHANGED o " + s256,
		"PAIR name=a allowpush timeout=60", "PAIRJOIN grd1-abc name=b", "PAIRCODE grd1-abc", "PAIRED a th::x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		m, err := Parse(line)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if s := m.String(); s != line {
			t.Fatalf("Parse(%q).String() = %q", line, s)
		}
	})
}

// FuzzReader feeds arbitrary input to the line reader.
func FuzzReader(f *testing.F) {
	f.Add("PAUSE\nRESUME\r\n\n")
	f.Add(strings.Repeat("y", 5000) + "\n")
	f.Fuzz(func(t *testing.T, in string) {
		r := NewReader(strings.NewReader(in))
		for i := 0; i < len(in)+2; i++ {
			line, err := r.ReadLine()
			if errors.Is(err, io.EOF) {
				return
			}
			if len(line) > MaxLineLength || strings.Contains(line, "\n") {
				t.Fatalf("bad line %q", clip(line))
			}
		}
		t.Fatal("reader did not reach EOF")
	})
}
