package thnode

import (
	"strings"
	"testing"

	"github.com/git-remote-daemon/git-remote-daemon/telehash"
)

func TestArrival(t *testing.T) {
	var x xmppState
	a, b := telehash.Hashname(strings.Repeat("a", 52)), telehash.Hashname(strings.Repeat("b", 52))
	ca, cb := x.arrival(a), x.arrival(b)
	if x.arrival(a) != ca {
		t.Fatal("two waiters of one node got different channels")
	}
	x.arrived(a)
	select {
	case <-ca:
	default:
		t.Fatal("a's arrival not told")
	}
	select {
	case <-cb:
		t.Fatal("b's waiters told of a's arrival")
	default:
	}
	select {
	case <-x.arrival(a):
		t.Fatal("the next arrival of a is already told")
	default:
	}
	x.arrived(b) // no panic on a second close either
	x.arrived(b)
}
