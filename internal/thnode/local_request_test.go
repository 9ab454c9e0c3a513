package thnode

import (
	"reflect"
	"strings"
	"testing"
)

// TestLocalRequestRoundTrip: request lines parse into requests that
// render back to the same lines.
func TestLocalRequestRoundTrip(t *testing.T) {
	hn := identity(t)
	url := thURL(hn)
	for _, line := range []string{
		"DIAL git " + url,
		"DIAL notify " + url + "&udp4=127.0.0.1:9&repo=abc wait",
		"DIAL notify th::" + string(hn.Hashname()) + " wait",
		"UNLINK " + string(hn.Hashname()),
		`REGISTER {"dir":"/home/u/r","git_dir":"/home/u/r/.git","common_dir":"/home/u/r/.git"}`,
		`REGISTER {"dir":"/a b/\"q\"","git_dir":"/g","common_dir":"/c"}`,
		`INVITE {"git_dir":"/home/u/r/.git","timeout":600,"name":"bea"}`,
		`INVITE {"git_dir":"/g"}`,
	} {
		r, err := parseLocalRequest(line)
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if got := r.String(); got != line {
			t.Errorf("%q renders as %q", line, got)
		}
	}
	for _, line := range []string{
		"", "DIAL", "DIAL git", "DIAL git " + url + " now", "DIAL  " + url, "DIAL git nope",
		"UNLINK", "UNLINK x", "REGISTER", "REGISTER {}", `REGISTER {"dir":"/a"}`, "REGISTER [", "HELLO",
		"INVITE", "INVITE {}", `INVITE {"git_dir":"/g","timeout":-1}`, `INVITE {"git_dir":"/g","timeout":86401}`, `INVITE {"timeout":5}`,
		"DIAL git " + url + " wait extra", "DIAL git " + strings.Repeat("a", maxLocalLine),
	} {
		if r, err := parseLocalRequest(line); err == nil {
			t.Errorf("%q parsed as %+v", line, r)
		}
	}
}

// FuzzLocalRequest: no line makes the parser panic, and what parses
// renders to a line that parses to the same request.
func FuzzLocalRequest(f *testing.F) {
	f.Add("DIAL git th::nzf4f6j7ylv53z3m4egrwltv2t2yks4rtpaimeg3avwqsoshqxba?cs3a=hp6yglmmqwcbw5hno37uauh6fn6dx5oj7s5vtapaifrur2jv6zha&udp4=127.0.0.1:9")
	f.Add("DIAL notify th::nzf4f6j7ylv53z3m4egrwltv2t2yks4rtpaimeg3avwqsoshqxba?repo=x wait")
	f.Add("UNLINK nzf4f6j7ylv53z3m4egrwltv2t2yks4rtpaimeg3avwqsoshqxba")
	f.Add(`REGISTER {"dir":"/r","git_dir":"/r/.git","common_dir":"/r/.git"}`)
	f.Add(`INVITE {"git_dir":"/r/.git","timeout":600,"name":"bea"}`)
	f.Fuzz(func(t *testing.T, line string) {
		r, err := parseLocalRequest(line)
		if err != nil {
			return
		}
		again, err := parseLocalRequest(r.String())
		if err != nil || !reflect.DeepEqual(r, again) {
			t.Fatalf("%q -> %q -> %+v, %v", line, r.String(), again, err)
		}
	})
}
