package cmdline

import (
	"fmt"
	"io"

	"github.com/git-remote-daemon/git-remote-daemon/internal/daemon"
	"github.com/git-remote-daemon/git-remote-daemon/internal/thnode"
	"github.com/git-remote-daemon/git-remote-daemon/internal/transport"
)

// thStatus is the routing and the peers' paths of the telehash node svc
// hosts, for the live status; nil when it hosts none (another daemon of
// the identity does, or no node runs).
func thStatus(svc *thnode.Service, remotes []daemon.RemoteStatus) *daemon.THStatus {
	if svc == nil {
		return nil
	}
	n := svc.Node()
	if n == nil {
		return nil
	}
	st := n.RoutingStatus()
	out := &daemon.THStatus{Hashname: string(n.Addr().Hashname), Router: st.Router, Relayed: st.Relayed,
		PeerRequests: st.PeerRequests, PeerRefused: st.PeerRefused, Refused: st.Refused}
	for _, r := range st.Routers {
		out.Routers = append(out.Routers, string(r))
	}
	for _, rs := range remotes {
		if rs.Transport != string(transport.TH) {
			continue
		}
		a, err := thnode.ParseAddr(rs.URL)
		if err != nil {
			continue
		}
		if path, relayed, ok := n.Mesh.PeerPath(a.Hashname); ok {
			out.Peers = append(out.Peers, daemon.THPeer{Remote: rs.Name, Hashname: string(a.Hashname), Path: path, Relayed: relayed})
		}
	}
	return out
}

// printTH prints the node's routing and how each th:: remote's node is
// reached (directly, or relayed by a router).
func printTH(w io.Writer, st *daemon.THStatus) {
	if st == nil {
		return
	}
	if st.Router {
		fmt.Fprintf(w, "telehash node routes (remotedaemon.thRouter): %d introductions asked, %d refused, %d packets relayed, %d handshakes of unnamed nodes refused\n",
			st.PeerRequests, st.PeerRefused, st.Relayed, st.Refused)
	}
	for _, r := range st.Routers {
		fmt.Fprintf(w, "telehash router %s: linked\n", r)
	}
	for _, p := range st.Peers {
		how := "directly at " + p.Path
		if p.Relayed {
			how = "through a router (" + p.Path + ")"
		}
		fmt.Fprintf(w, "telehash remote %s: reached %s\n", p.Remote, how)
	}
}
