package redact

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestString(t *testing.T) {
	th := "th::4xcpozdbtpe64ib2zmo2mhgk7pydpi57t2owltjn6fex3q6kcdxa?cs3a=q6qyu6b7gjho5lzwhumeiq66ops7y4zhtwwpe7svlfvpeg2nsfya&udp4=127.0.0.1:4242"
	for _, tc := range []struct{ in, want string }{
		// User information.
		{"https://me:s3cret@example.org/r.git", "https://me:xxxxx@example.org/r.git"},
		{"https://a:b@host", "https://a:xxxxx@host"},
		{"https://me@example.org/r.git", "https://me@example.org/r.git"},
		{"ssh://git@host:22/r", "ssh://git@host:22/r"},
		{"https://ghp_abcDEF123@github.com/o/r", "https://xxxxx@github.com/o/r"},
		{"https://x-access-token:gho_z@github.com/o/r", "https://x-access-token:xxxxx@github.com/o/r"},
		{"https://0123456789abcdef0123456789@host/r", "https://xxxxx@host/r"},
		{"https://u:p@ss@host/r", "https://u:xxxxx@host/r"},
		// Query parameters.
		{"https://host/r.git?token=abc", "https://host/r.git?token=xxxxx"},
		{"https://host/r?a=1&access_token=abc&b=2", "https://host/r?a=1&access_token=xxxxx&b=2"},
		{"https://host/r?password=p&passwd=q&secret=s&key=k&sig=g", "https://host/r?password=xxxxx&passwd=xxxxx&secret=xxxxx&key=xxxxx&sig=xxxxx"},
		{"https://s3/b?X-Amz-Signature=f00&X-Amz-Credential=AK%2F1&X-Amz-Security-Token=t", "https://s3/b?X-Amz-Signature=xxxxx&X-Amz-Credential=xxxxx&X-Amz-Security-Token=xxxxx"},
		{"https://host/r?api-key=1&ApiKey=2&private_token=3&auth=4", "https://host/r?api-key=xxxxx&ApiKey=xxxxx&private_token=xxxxx&auth=xxxxx"},
		{"https://host/r?access%5Ftoken=abc", "https://host/r?access%5Ftoken=xxxxx"},
		{"https://host/r?ref=main&pubkey=abc&token=", "https://host/r?ref=main&pubkey=abc&token="},
		{"https://host/r?token=abc#frag", "https://host/r?token=xxxxx#frag"},
		// th:: URLs carry public keys and paths only.
		{th, th},
		{"/srv/r.git", "/srv/r.git"},
		// git's messages quote the URL.
		{"fatal: unable to access 'https://u:pw@127.0.0.1:1/r.git?token=abc/': Failed to connect",
			"fatal: unable to access 'https://u:xxxxx@127.0.0.1:1/r.git?token=xxxxx': Failed to connect"},
		{"git ls-remote: exit status 128: fatal: repository 'http://h/r?access_token=T0K/' not found",
			"git ls-remote: exit status 128: fatal: repository 'http://h/r?access_token=xxxxx' not found"},
	} {
		if got := String(tc.in); got != tc.want {
			t.Errorf("String(%q)\n = %q\nwant %q", tc.in, got, tc.want)
		}
	}
}

func TestHandler(t *testing.T) {
	var b bytes.Buffer
	log := slog.New(Handler(slog.NewTextHandler(&b, nil))).With("remote", "https://h/r?token=S3CR1T")
	log.Info("reconnecting to https://u:S3CR2T@h/r", "err", errors.New("fatal: 'https://h/r?sig=S3CR3T'"),
		"url", "https://h/r?key=S3CR4T", slog.Group("g", "u", "https://ghp_S3CR5T@h/r"), "urls", []string{"https://h/?secret=S3CR6T"})
	out := b.String()
	if strings.Contains(out, "S3CR1T") || strings.Contains(out, "S3CR2T") || strings.Contains(out, "S3CR3T") ||
		strings.Contains(out, "S3CR4T") || strings.Contains(out, "S3CR5T") || strings.Contains(out, "S3CR6T") {
		t.Errorf("a secret was logged: %s", out)
	}
	if !strings.Contains(out, "token=xxxxx") || !strings.Contains(out, "reconnecting to https://u:xxxxx@h/r") {
		t.Errorf("the log lost its shape: %s", out)
	}
	if Handler(Handler(slog.DiscardHandler)) != Handler(slog.DiscardHandler) {
		t.Error("Handler wraps twice")
	}
}

// FuzzString: masking never panics, is stable, and leaves no value of
// a token parameter behind.
func FuzzString(f *testing.F) {
	for _, s := range []string{"https://me:s3cret@example.org/r.git?token=abc", "th::abc?cs3a=x&udp4=1.2.3.4:5", "fatal: 'ssh://git@h/r'"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		once := String(s)
		if twice := String(once); twice != once {
			t.Errorf("String is not stable: %q -> %q -> %q", s, once, twice)
		}
		secret := "SECRET9z"
		in := "https://host/r?token=" + secret + "&" + s
		if got := String(in); !strings.HasPrefix(got, "https://host/r?token="+Mask+"&") {
			t.Errorf("String(%q) = %q", in, got)
		}
	})
}
