package helper

import (
	"errors"
	"strings"
	"testing"
)

func TestParseCommandRoundTrip(t *testing.T) {
	tests := []struct {
		line string
		want Command
	}{
		{"", Command{}},
		{"capabilities", Command{Verb: VerbCapabilities}},
		{"option verbosity 1", Command{Verb: VerbOption, Name: "verbosity", Value: "1"}},
		{"option progress false", Command{Verb: VerbOption, Name: "progress", Value: "false"}},
		{"option push-option a value with spaces", Command{Verb: VerbOption, Name: "push-option", Value: "a value with spaces"}},
		{"option servpath ", Command{Verb: VerbOption, Name: "servpath", Value: ""}},
		{"connect git-upload-pack", Command{Verb: VerbConnect, Name: "git-upload-pack"}},
		{"connect git-receive-pack", Command{Verb: VerbConnect, Name: "git-receive-pack"}},
	}
	for _, tt := range tests {
		got, err := ParseCommand(tt.line)
		if err != nil {
			t.Errorf("ParseCommand(%q): %v", tt.line, err)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseCommand(%q) = %#v, want %#v", tt.line, got, tt.want)
		}
		if s := got.String(); s != tt.line {
			t.Errorf("String() = %q, want %q", s, tt.line)
		}
	}
}

func TestParseCommandErrors(t *testing.T) {
	tests := []struct {
		line string
		want error
	}{
		{"list", ErrUnknownCommand},
		{"fetch 0000000000000000000000000000000000000000 refs/heads/main", ErrUnknownCommand},
		{"stateless-connect git-upload-pack", ErrUnknownCommand},
		{"Capabilities", ErrUnknownCommand},
		{" ", ErrMalformedCommand},
		{" capabilities", ErrMalformedCommand},
		{"capabilities ", ErrMalformedCommand},
		{"option", ErrMalformedCommand},
		{"option verbosity", ErrMalformedCommand},
		{"option  1", ErrMalformedCommand},
		{"connect", ErrMalformedCommand},
		{"connect ", ErrMalformedCommand},
		{"connect git-upload-pack extra", ErrMalformedCommand},
		{"option x " + strings.Repeat("v", MaxCommandLine), ErrMalformedCommand},
	}
	for _, tt := range tests {
		if c, err := ParseCommand(tt.line); !errors.Is(err, tt.want) {
			t.Errorf("ParseCommand(%.40q) = %#v, %v; want %v", tt.line, c, err, tt.want)
		}
	}
}

func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{"", "capabilities", "option verbosity 1", "option a b c",
		"connect git-upload-pack", "connect", "list", " x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		c, err := ParseCommand(line)
		if err != nil {
			return
		}
		if s := c.String(); s != line {
			t.Fatalf("ParseCommand(%q).String() = %q", line, s)
		}
		again, err := ParseCommand(c.String())
		if err != nil || again != c {
			t.Fatalf("reparse of %q = %#v, %v; want %#v", line, again, err, c)
		}
	})
}
