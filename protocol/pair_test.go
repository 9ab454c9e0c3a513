package protocol

import (
	"errors"
	"reflect"
	"testing"
)

const code = "grd1-abcdefghijklmnopqrstuvwxyz234567"

func TestPairRoundTrip(t *testing.T) {
	url := "th::aaaabbbbccccddddeeeeffffgggghhhhiiiijjjjkkkkllllmmmm?cs3a=x&udp4=127.0.0.1:4242"
	for _, tc := range []struct {
		line string
		msg  Message
	}{
		{"PAIR", Pair{}},
		{"PAIR name=bob", Pair{Name: "bob"}},
		{"PAIR allowpush", Pair{AllowPush: true}},
		{"PAIR timeout=600", Pair{Timeout: 600}},
		{"PAIR name=bob allowpush timeout=30", Pair{Name: "bob", AllowPush: true, Timeout: 30}},
		{"PAIRJOIN " + code, PairJoin{Code: code}},
		{"PAIRJOIN " + code + " name=alice allowpush", PairJoin{Code: code, Name: "alice", AllowPush: true}},
		{"PAIRJOIN " + code + " allowpush", PairJoin{Code: code, AllowPush: true}},
		{"PAIRCODE " + code, PairCode{Code: code}},
		{"PAIRED bob " + url, Paired{Remote: "bob", URL: url}},
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

func TestPairParseErrors(t *testing.T) {
	for _, line := range []string{
		"PAIR ", "PAIR  name=a", "PAIR name=", "PAIR name=*", "PAIR name", "PAIR allowpush=1",
		"PAIR allowpush name=a", "PAIR name=a name=b", "PAIR allowpush allowpush",
		"PAIR timeout=0", "PAIR timeout=-1", "PAIR timeout=010", "PAIR timeout=1m", "PAIR timeout=86401",
		"PAIR push", "PAIRJOIN", "PAIRJOIN ", "PAIRJOIN a_b", "PAIRJOIN " + code + " timeout=5",
		"PAIRJOIN " + code + " ", "PAIRCODE", "PAIRCODE a b", "PAIRED bob", "PAIRED bob ",
		"PAIRED bob a b", "PAIRED  url", "pair",
	} {
		if m, err := Parse(line); err == nil {
			t.Errorf("Parse(%q) = %#v, want an error", line, m)
		} else if !errors.Is(err, ErrMalformed) {
			t.Errorf("Parse(%q) error %v does not wrap ErrMalformed", line, err)
		}
	}
}

func TestPairCommands(t *testing.T) {
	for _, line := range []string{"PAIR", "PAIRJOIN " + code + " allowpush"} {
		if _, err := ParseCommand(line); err != nil {
			t.Errorf("ParseCommand(%q): %v", line, err)
		}
	}
	for _, line := range []string{"PAIRCODE " + code, "PAIRED bob th::x"} {
		if _, err := ParseCommand(line); err == nil {
			t.Errorf("ParseCommand(%q) accepted an emitted message", line)
		}
	}
}
