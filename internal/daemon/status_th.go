package daemon

// THStatus is the routing of the telehash node a daemon hosts, as
// `git-remote-daemon status` shows it.
type THStatus struct {
	Hashname string `json:"hashname"`
	// Router: the node routes (remotedaemon.thRouter).
	Router bool `json:"router,omitempty"`
	// Routers are the routers the node is linked to now.
	Routers []string `json:"routers,omitempty"`
	// Relayed counts the packets relayed as a router; PeerRequests the
	// introductions asked of it and PeerRefused those refused; Refused
	// the handshakes of nodes no remote names.
	Relayed      uint64 `json:"relayed,omitempty"`
	PeerRequests uint64 `json:"peer_requests,omitempty"`
	PeerRefused  uint64 `json:"peer_refused,omitempty"`
	Refused      uint64 `json:"refused,omitempty"`
	// Peers are the th:: remotes' nodes linked now, with their path.
	Peers []THPeer `json:"peers,omitempty"`
}

// THPeer is a linked peer and the path it is reached by.
type THPeer struct {
	Remote   string `json:"remote"`
	Hashname string `json:"hashname"`
	Path     string `json:"path"`
	// Relayed: through a router, not directly.
	Relayed bool `json:"relayed,omitempty"`
}
