package transport

import "testing"

func TestClassify(t *testing.T) {
	for url, want := range map[string]Kind{
		"/srv/repo.git":                    Local,
		"../repo":                          Local,
		"repo":                             Local,
		"./a:b":                            Local,
		"file:///srv/repo":                 Local,
		"ssh://host/srv/repo":              SSH,
		"git+ssh://user@host:22/repo":      SSH,
		"ssh+git://host/repo":              SSH,
		"user@host:repo.git":               SSH,
		"host:repo":                        SSH,
		"[::1]:repo":                       SSH,
		"[user@host:2222]:repo":            SSH,
		"th::nzf4f6j7ylv53z3m4egrwltv2t2y": TH,
		"xmpp::alice@example.org":          XMPP,
		"https://example.org/r.git":        Other,
		"git://example.org/r.git":          Other,
		"foo::bar":                         Other,
	} {
		if got := Classify(url); got != want {
			t.Errorf("Classify(%q) = %s, want %s", url, got, want)
		}
	}
}
