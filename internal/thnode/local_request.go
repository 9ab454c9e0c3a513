package thnode

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/git-remote-daemon/git-remote-daemon/telehash"
)

// localRequest is the first line of a connection to the lending socket
// (see the exchange above ServeLocal).
type localRequest struct {
	Verb string // DIAL, UNLINK, REGISTER or INVITE
	// DIAL
	Service string
	Addr    Addr
	Wait    bool
	// UNLINK
	Peer telehash.Hashname
	// REGISTER
	Reg Registration
	// INVITE
	Invite InviteRequest
}

var errBadLocalRequest = errors.New("bad request")

// parseLocalRequest parses a request line (without its newline).
func parseLocalRequest(line string) (localRequest, error) {
	var r localRequest
	if len(line) > maxLocalLine {
		return r, fmt.Errorf("%w: over %d bytes", errBadLocalRequest, maxLocalLine)
	}
	verb, rest, _ := strings.Cut(line, " ")
	r.Verb = verb
	switch verb {
	case "DIAL":
		f := strings.Split(rest, " ")
		if len(f) < 2 || len(f) > 3 || (len(f) == 3 && f[2] != "wait") || f[0] == "" || strings.ContainsAny(f[0], "\t\r\n") {
			return r, errBadLocalRequest
		}
		a, err := ParseAddr(f[1])
		if err != nil {
			return r, err
		}
		r.Service, r.Addr, r.Wait = f[0], a, len(f) == 3
	case "UNLINK":
		hn, err := telehash.ParseHashname(rest)
		if err != nil {
			return r, fmt.Errorf("%w: %v", errBadLocalRequest, err)
		}
		r.Peer = hn
	case "REGISTER":
		if err := json.Unmarshal([]byte(rest), &r.Reg); err != nil || r.Reg.Dir == "" || r.Reg.GitDir == "" || r.Reg.CommonDir == "" {
			return r, fmt.Errorf("%w: registration", errBadLocalRequest)
		}
	case "INVITE":
		if err := json.Unmarshal([]byte(rest), &r.Invite); err != nil {
			return r, fmt.Errorf("%w: invitation", errBadLocalRequest)
		}
		if err := r.Invite.check(); err != nil {
			return r, fmt.Errorf("%w: invitation: %v", errBadLocalRequest, err)
		}
	default:
		return r, errBadLocalRequest
	}
	return r, nil
}

// String renders the request line (without its newline).
func (r localRequest) String() string {
	switch r.Verb {
	case "DIAL":
		s := "DIAL " + r.Service + " " + r.Addr.String()
		if r.Wait {
			s += " wait"
		}
		return s
	case "UNLINK":
		return "UNLINK " + string(r.Peer)
	case "REGISTER":
		b, _ := json.Marshal(r.Reg) // strings only: cannot fail
		return "REGISTER " + string(b)
	case "INVITE":
		b, _ := json.Marshal(r.Invite) // strings and a number: cannot fail
		return "INVITE " + string(b)
	}
	return r.Verb
}
