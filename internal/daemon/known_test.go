package daemon

import (
	"reflect"
	"testing"

	"github.com/git-remote-daemon/git-remote-daemon/watch"
)

func TestDeriveKnown(t *testing.T) {
	a, b := "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	remote := watch.Refs{"refs/heads/main": a, "refs/heads/dev": b, "refs/tags/v1": a, "refs/tags/v2": b}
	// refs/heads/dev is mapped: a same-named local branch at the same
	// object (the remote pushed it here) does not make it known while
	// its tracking ref lags.
	local := watch.Refs{"refs/remotes/origin/main": a, "refs/remotes/origin/dev": a, "refs/tags/v1": a, "refs/heads/dev": b}
	got := deriveKnown(remote, local, parseRefspecs([]string{"+refs/heads/*:refs/remotes/origin/*"}))
	want := watch.Refs{"refs/heads/main": a, "refs/tags/v1": a}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("deriveKnown = %v, want %v", got, want)
	}
}

func TestKnownRoundTrip(t *testing.T) {
	dir := t.TempDir()
	if _, ok, err := loadKnown(dir, "a/b"); ok || err != nil {
		t.Fatalf("nothing saved yet: %v %v", ok, err)
	}
	refs := watch.Refs{"refs/heads/x": "0123456789abcdef0123456789abcdef01234567"}
	if err := saveKnown(dir, "a/b", refs); err != nil {
		t.Fatal(err)
	}
	got, ok, err := loadKnown(dir, "a/b")
	if !ok || err != nil || !got.Equal(refs) {
		t.Fatalf("loadKnown = %v %v %v", got, ok, err)
	}
	forgetKnown(dir, "a/b")
	if _, ok, _ := loadKnown(dir, "a/b"); ok {
		t.Fatal("still known after forget")
	}
}

func TestNewSHAs(t *testing.T) {
	a := "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	got := newSHAs([]watch.Change{{Ref: "r1", New: a}, {Ref: "r2", New: a}, {Ref: "r3", Old: a}})
	want := []string{a, "0000000000000000000000000000000000000000"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("newSHAs = %v", got)
	}
}

func TestRejectedRefs(t *testing.T) {
	out := "To ../up.git\n=\trefs/heads/a:refs/heads/a\t[up to date]\n!\trefs/heads/main:refs/heads/main\t[rejected] (fetch first)\nDone\n"
	if got := rejectedRefs(out); got != "main [rejected] (fetch first)" {
		t.Errorf("rejectedRefs = %q", got)
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://me:s3cret@example.org/r.git": "https://me:xxxxx@example.org/r.git",
		"https://me@example.org/r.git":        "https://me@example.org/r.git",
		"ssh://git@host:22/r":                 "ssh://git@host:22/r",
		"/srv/r.git":                          "/srv/r.git",
		"https://a:b@host":                    "https://a:xxxxx@host",
	} {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
