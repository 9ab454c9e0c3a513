package gitcfg

import (
	"strings"
	"testing"
)

// TestAllowPush: remote.<name>.daemonAllowPush is false unless set to a
// true boolean; a bad value grants nothing and is reported; changing it
// does not make the remote a different one (it restarts nothing: the
// node reads it for itself).
func TestAllowPush(t *testing.T) {
	c, err := Parse([]byte("remote.a.url\nth::x\x00remote.b.url\nth::y\x00remote.b.daemonallowpush\nyes\x00" +
		"remote.c.url\nth::z\x00remote.c.daemonallowpush\nmaybe\x00remote.d.url\nth::w\x00remote.d.daemonallowpush\x00"))
	if err != nil {
		t.Fatal(err)
	}
	rs := c.Remotes()
	if len(rs) != 4 {
		t.Fatalf("remotes = %+v", rs)
	}
	if a := rs[0]; a.AllowPush || a.Err != nil {
		t.Errorf("unset: %+v", a)
	}
	if b := rs[1]; !b.AllowPush || b.Err != nil {
		t.Errorf("yes: %+v", b)
	}
	if c := rs[2]; c.AllowPush || c.Err == nil || !strings.Contains(c.Err.Error(), "daemonallowpush") {
		t.Errorf("maybe: %+v", c)
	}
	if d := rs[3]; !d.AllowPush || d.Err != nil {
		t.Errorf("key without a value (true to git): %+v", d)
	}
	if !rs[0].Equal(Remote{Name: "a", URL: "th::x", Watch: true, Action: ActionFetch, AllowPush: true, Settings: rs[0].Settings}) {
		t.Error("a change of daemonAllowPush alone makes another remote")
	}
	if _, ok := rs[1].Settings["daemonallowpush"]; ok {
		t.Error("daemonAllowPush is among the settings that restart the remote")
	}
}
