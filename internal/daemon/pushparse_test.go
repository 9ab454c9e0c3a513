package daemon

import (
	"reflect"
	"testing"

	"github.com/git-remote-daemon/git-remote-daemon/watch"
)

func TestParsePushed(t *testing.T) {
	local := watch.Refs{"refs/heads/main": sha(1), "refs/heads/x": sha(2), "refs/tags/v1": sha(3)}
	for _, c := range []struct {
		out  string
		want pushResult
	}{
		{"To ../up.git\n=\trefs/heads/main:refs/heads/main\t[up to date]\n=\trefs/tags/v1:refs/tags/v1\t[up to date]\nDone\n",
			pushResult{updated: map[string]string{"refs/heads/main": sha(1), "refs/tags/v1": sha(3)}}},
		{"To ../up.git\n \trefs/heads/main:refs/heads/main\t59ea8c7..07f795e\n*\trefs/heads/x:refs/heads/y\t[new branch]\n-\t:refs/heads/old\t[deleted]\n!\trefs/tags/v1:refs/tags/v1\t[rejected] (already exists)\nDone\n",
			pushResult{updated: map[string]string{"refs/heads/main": sha(1), "refs/heads/y": sha(2), "refs/heads/old": ""}, changed: true}},
		{"*\t" + sha(9) + ":refs/tags/v9\t[new tag]\n", pushResult{updated: map[string]string{"refs/tags/v9": sha(9)}, changed: true}},
		{"", pushResult{updated: map[string]string{}}},
	} {
		if got := parsePushed(c.out, local); !reflect.DeepEqual(got, c.want) {
			t.Errorf("parsePushed(%q) = %+v, want %+v", c.out, got, c.want)
		}
	}
}

func FuzzParsePushed(f *testing.F) {
	f.Add("=\trefs/heads/main:refs/heads/main\t[up to date]\n-\t:refs/heads/x\t[deleted]\n")
	f.Add(" \trefs/heads/main:\tx\n")
	f.Fuzz(func(t *testing.T, out string) {
		res := parsePushed(out, watch.Refs{"refs/heads/main": sha(1)})
		for ref, sha := range res.updated {
			if ref == "" && sha != "" {
				t.Fatalf("an empty ref updated to %q", sha)
			}
		}
	})
}
