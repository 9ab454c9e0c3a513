package telehash

import (
	"crypto/rand"
	"io"
	"log/slog"
	"runtime"
	"sync/atomic"
	"time"
)

// MeshOptions configure a Mesh. Zero values select the defaults.
type MeshOptions struct {
	// Listen is the UDP address to bind, e.g. "127.0.0.1:0" (default).
	Listen string
	// Allow decides whether a peer that handshakes to us and was not
	// linked with Link is answered at all; unauthorized peers get no
	// packet back. nil allows no unknown peer.
	Allow func(Hashname) bool
	// OnLink is called when a link comes up or goes down. It runs on a
	// mesh goroutine and must not block.
	OnLink func(peer Hashname, up bool)
	// Logger receives debug logs; nil discards them.
	Logger *slog.Logger
	// Keepalive is the keepalive handshake interval (default 30 s, spec:
	// transports/udp.md "Timeout").
	Keepalive time.Duration
	// LinkTimeout marks a link down when nothing was received from the
	// peer for that long (default 2.5 x Keepalive).
	LinkTimeout time.Duration
	// IdleTimeout is how long a link is still kept alive after its last
	// use (its last channel closed, or Keep released); after it the link
	// is let go: no keepalives, no re-linking (default 2 x Keepalive).
	IdleTimeout time.Duration
	// HandshakeTimeout is how long Link resends handshakes (at 1, 3, 7
	// and 15 s) before giving up (default 30 s, spec: e3x/handshake.md).
	HandshakeTimeout time.Duration
	// ChannelTimeout fails a reliable channel whose oldest unacknowledged
	// packet stays unacknowledged that long (default 10 s, as telehash-js).
	ChannelTimeout time.Duration
	// Window is the receive buffer of reliable channels in packets, which
	// the receiver advertises as the last "miss" entry (default 1024).
	// Senders start at 50 packets, what telehash-js accepts.
	Window int
	// MaxChannels caps the open channels per peer (default 64); each
	// reliable channel may buffer Window packets each way.
	MaxChannels int
	// SocketBuffer is the UDP socket buffer size requested (default 4 MiB).
	SocketBuffer int
	// HandshakeRate and HandshakeBurst limit the handshakes with unknown
	// ephemeral keys (new links, restarted peers, strangers: those that
	// need X25519) accepted from one source address (UDP address and
	// port): HandshakeRate a second, HandshakeBurst at once; more are
	// dropped before any X25519. A new link sends 5 in 15 s. Defaults: 2
	// a second, burst 10.
	HandshakeRate  float64
	HandshakeBurst int
	// HandshakeWorkers authenticate handshakes with unknown ephemeral
	// keys off the read loop (default GOMAXPROCS/2, at least 1);
	// HandshakeQueue bounds those waiting (default 64): more are dropped.
	HandshakeWorkers int
	HandshakeQueue   int
	// Rand is the randomness source (default crypto/rand.Reader).
	Rand io.Reader
	// NoBatchIO makes the mesh read and write one datagram per system
	// call, as on systems without batching (udpbatch.go); NoGSO keeps
	// batching but not UDP segmentation offload (GSO and GRO).
	NoBatchIO, NoGSO bool

	// Routing (router.go, relay.go).
	// Router makes the mesh answer peer requests: introduce peers and
	// relay their packets. Off by default.
	Router bool
	// RouteFor says whom the router routes for: it introduces A to B only
	// when RouteFor admits both (and has links to both). nil admits
	// every peer the mesh has a link with (those Allow or Link admitted),
	// which is what telehash-js does. A node's own owner should pass the
	// peers it trusts (the daemon: the peers named in its config).
	RouteFor func(Hashname) bool
	// RelayRate bounds the bytes a second relayed for one pair of peers
	// (default 4 MiB/s; a burst of a second's worth); more is dropped.
	// Negative: no bound. SetRelayRate changes it while the mesh runs.
	RelayRate int
	// MaxRelays bounds the relayed routes kept (default 1024): one per
	// introduced side and session.
	MaxRelays int
	// RouterKeepalive is how often a node sends keepalives to the routers
	// it uses (AddRouter), to keep its NAT's mapping open (default 20 s,
	// or Keepalive if shorter).
	RouterKeepalive time.Duration
}

func (o *MeshOptions) setDefaults() {
	if o.Listen == "" {
		o.Listen = "127.0.0.1:0"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Keepalive <= 0 {
		o.Keepalive = 30 * time.Second
	}
	if o.LinkTimeout <= 0 {
		o.LinkTimeout = o.Keepalive * 5 / 2
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 2 * o.Keepalive
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = 30 * time.Second
	}
	if o.ChannelTimeout <= 0 {
		o.ChannelTimeout = 10 * time.Second
	}
	if o.Window <= 0 {
		o.Window = 1024
	}
	o.Window = max(o.Window, 8)
	if o.MaxChannels <= 0 {
		o.MaxChannels = 64
	}
	if o.SocketBuffer <= 0 {
		o.SocketBuffer = 4 << 20
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	if o.HandshakeRate <= 0 {
		o.HandshakeRate = 2
	}
	if o.HandshakeBurst <= 0 {
		o.HandshakeBurst = 10
	}
	if o.HandshakeWorkers <= 0 {
		o.HandshakeWorkers = max(1, runtime.GOMAXPROCS(0)/2)
	}
	if o.HandshakeQueue <= 0 {
		o.HandshakeQueue = 64
	}
	o.setRoutingDefaults()
}

// maxSources bounds the per-source handshake buckets.
const maxSources = 4096

// Stats counts dropped packets and other events, for tests and metrics.
type Stats struct {
	Received, Sent       uint64 // datagrams
	DropMalformed        uint64 // not a cloaked LOB packet, too large, bad head
	DropUnknownToken     uint64 // channel packet for no exchange
	DropDecrypt          uint64 // failed decryption or authentication
	DropUnauthorized     uint64 // handshake from a peer Allow refused
	DropHandshake        uint64 // valid handshake that could not be applied
	DropChannel          uint64 // channel packet for no channel, or invalid
	DropOverflow         uint64 // reliable packet beyond the receive window
	Retransmits          uint64 // reliable packets resent
	Timeouts             uint64 // reliable retransmission timeouts
	Duplicates           uint64 // reliable packets received twice
	HandshakesSent       uint64
	ChannelsOpened       uint64
	ChannelsAccepted     uint64
	UnreliableQueueDrops uint64
	DropReplay           uint64 // handshake not newer than the session (replay, duplicate, stale)
	DropRateLimited      uint64 // handshake beyond its source's limit, before any X25519
	DropOverload         uint64 // handshake with an unknown key dropped: the queue was full
	HandshakesOpened     uint64 // handshakes with an unknown key decrypted (with X25519)
	Sessions             uint64 // sessions started (new remote ephemeral keys accepted)
	RoutingStats
}

type meshStats struct {
	received, sent, dropMalformed, dropUnknownToken, dropDecrypt, dropUnauthorized,
	dropHandshake, dropChannel, dropOverflow, retransmits, timeouts, duplicates, handshakesSent,
	channelsOpened, channelsAccepted, unreliableQueueDrops, dropReplay, dropRateLimited,
	dropOverload, handshakesOpened, sessions atomic.Uint64
	routing routingStats
}

// Stats returns a snapshot of the counters.
func (m *Mesh) Stats() Stats {
	s := &m.stats
	return Stats{
		Received: s.received.Load(), Sent: s.sent.Load(),
		DropMalformed: s.dropMalformed.Load(), DropUnknownToken: s.dropUnknownToken.Load(),
		DropDecrypt: s.dropDecrypt.Load(), DropUnauthorized: s.dropUnauthorized.Load(),
		DropHandshake: s.dropHandshake.Load(), DropChannel: s.dropChannel.Load(),
		DropOverflow: s.dropOverflow.Load(), Retransmits: s.retransmits.Load(),
		Timeouts: s.timeouts.Load(), Duplicates: s.duplicates.Load(),
		HandshakesSent: s.handshakesSent.Load(), ChannelsOpened: s.channelsOpened.Load(),
		ChannelsAccepted: s.channelsAccepted.Load(), UnreliableQueueDrops: s.unreliableQueueDrops.Load(),
		DropReplay: s.dropReplay.Load(), DropRateLimited: s.dropRateLimited.Load(),
		DropOverload: s.dropOverload.Load(), HandshakesOpened: s.handshakesOpened.Load(),
		Sessions: s.sessions.Load(), RoutingStats: s.routing.snapshot(),
	}
}
