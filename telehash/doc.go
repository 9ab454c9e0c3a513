// Package telehash implements Telehash v3 (E3X) as spoken by telehash-js
// 0.4.18: base32, hashnames, LOB packets, cloaking, cipher set 3a,
// identities, link handshakes, exchanges and channel packets, and on top
// of them a UDP endpoint (Mesh) with reliable channels and streams.
//
// The specification is telehash v3 (github.com/telehash/telehash.org,
// directory v3; paths such as e3x/channels.md below are relative to it);
// where it disagrees with telehash-js on the wire, this package follows
// telehash-js (see the comments on each function).
//
// # Usage
//
// An Identity (GenerateIdentity, LoadIdentity, Identity.Save) holds an
// endpoint's keys; its Hashname names it. NewMesh binds a UDP socket for
// an identity; Mesh.Link reaches a peer from its LinkInfo (keys and
// paths, what a link:// URL carries); Mesh.OpenStream and
// Mesh.OpenChannel open channels to it, and Mesh.Handle accepts the
// peer's. MeshOptions.Allow says which unknown peers are answered at
// all. The package example runs a server and a client on loopback.
//
// The lower layers (base32, Hashname, LOB packets, Cloak, cipher set 3a,
// Handshake, Exchange, ChannelPacket) are exported for other transports
// of E3X; Mesh is their UDP one.
//
// Every parser of network input returns an error wrapping one of the
// sentinel errors (ErrMalformed, ErrTooLarge, ErrUnsupported, ErrDecrypt,
// ...) and never panics. Decoded packets may alias the caller's buffer.
// Only canonical X25519 keys are accepted (from the wire, link info or
// URLs): one key pair has one hashname.
//
// # Mesh
//
// NewMesh binds a UDP socket and keeps one Exchange per peer hashname.
// Every datagram is cloaked (transports/udp.md). Link handshakes to a
// peer's paths (resent at 1, 3, 7 and 15 s, given up at 30 s); a peer
// that was not linked and handshakes to us is answered only if
// MeshOptions.Allow admits its hashname — otherwise nothing at all is
// sent back. Garbage, unknown tokens and failed decryptions are dropped
// before any per-peer state is touched and counted in Stats. Links in use
// (open channels, or held with Keep) are kept alive with a handshake
// every Keepalive (30 s), declared down after LinkTimeout without any
// packet (OnLink reports changes, channels fail with ErrLinkDown); a kept
// peer that is down gets a handshake every Keepalive until it answers. A
// link idle for IdleTimeout is let go: no keepalives, no re-linking; the
// next OpenChannel links again. A restarted peer (new ephemeral key, any
// at) is taken up as a new session, failing the old session's channels
// with ErrSessionReset.
//
// Pipes: a path to a peer may be a Pipe instead of a UDP address (a
// relay through a router, an XMPP session). Mesh.AddPipe and
// LinkInfo.Pipes offer one to a peer; Mesh.Receive hands the mesh what
// arrived over one, handled exactly as a datagram (authentication,
// replay protection, per-source limits keyed by the pipe). The current
// path is where the last fresh authenticated packet came from, UDP or
// pipe alike; handshakes and keepalives go to every path.
//
// Routing (spec: routing.md, channels/peer.md, channels/connect.md): a
// mesh with MeshOptions.Router introduces peers it has links with and
// that RouteFor admits, and relays their packets (still end-to-end
// encrypted) while they have no direct path. A node names its routers
// with Mesh.AddRouter (kept alive every RouterKeepalive, for NATs) or
// per peer with LinkVia ("peer" paths); Link then also sends its
// handshakes through them. When introduced, both sides send handshakes
// to the address the router saw the other at (hole punching): a direct
// UDP path that works is preferred, and the relay carries the traffic
// while there is none. Interoperates with telehash-js's peer extension
// both ways.
//
// Replays: anyone on the path can record datagrams and send them again,
// from anywhere. Only a fresh authenticated packet moves a peer's path
// and keeps its link alive: a handshake with an at above the highest
// received in the session (or starting a session), or a channel packet
// that brings new reliable content, a new acknowledgement or a new
// channel. A handshake not newer than that (a replay, a duplicate, one
// of an earlier session, even of a peer forgotten since: the mesh keeps
// a bounded memory of them) changes nothing: its path and session stay.
// It is answered within a small budget per peer (4 a second), and only
// when the peer may need it: a duplicate of the session's first handshake on the peer's known
// path until the peer shows it got ours; a stale handshake (a new
// ephemeral key never seen, with an at not above the session's: a peer
// restarted within a second or two, maybe on another port) up to 5
// times per key, with a raised at, so the peer answers with a fresh at
// and is taken up; a replay of an earlier session's, never. A restarted
// peer whose at is higher is taken up at once, from any address.
//
// Floods: the read loop handles channel packets and the handshakes of
// known sessions itself, without X25519 (its results are cached per
// exchange). A handshake with an unknown ephemeral key passes cheap
// checks (size, cipher set, canonical and not low-order key), then its
// source address's token bucket (MeshOptions.HandshakeRate and
// HandshakeBurst), then waits in a bounded queue (HandshakeQueue) for
// HandshakeWorkers, which open it; what does not fit is dropped and
// counted in Stats.
//
// # Channels
//
// OpenChannel and Handle open and accept channels (e3x/channels.md);
// types without a handler are refused with err "unknown type" as in
// telehash-js. Channel ids increase per session (telehash-js counts 1, 3,
// 5... or 2, 4, 6... in opening order): an open with an id used before in
// the session, or more than 64 steps below the highest, is dropped, so a
// recorded open replayed does not run its handler again. A replayed
// reliable packet is a duplicate (its seq was received); content of an
// unreliable channel has no seq, so, as with plain UDP, a replay of it
// is delivered again while the channel is open (streams are reliable). Reliable channels (e3x/reliable.md) carry seq, ack and
// miss, deliver in order, resend what the receiver lists as missing
// (plus ack+1, which telehash-js omits), resend on a timeout (RFC 6298
// estimate, 200 ms to 2 s) and fail with err "timeout" after
// ChannelTimeout (10 s) without progress. A clean close needs end from
// both sides; err aborts at once.
//
// Flow control: the ack is the highest seq received in order (queued for
// the application); the last miss entry advertises the highest seq the
// receive buffer accepts, which shrinks while the application does not
// read. Senders start with a window of 50 packets (telehash-js drops
// anything more than 50 past its ack) and adopt the window a receiver
// advertises: Window (1024 packets) between two Meshes. Within it a
// Reno-style congestion window (slow start, halving on loss, partial-ack
// recovery) paces the sender, and a closed window is probed. Datagrams
// stay within MaxDatagramSize (1400 bytes).
//
// # Paths and roaming
//
// A Mesh binds IPv4 or IPv6 ("[::]:port" is dual stack; IPv4 peers keep
// udp4 paths, v4-mapped addresses are unmapped). Every link carries a
// "path" channel (channels/path.md): half a second after a link comes
// up each side lists its own paths (LocalPaths) and answers the other's
// request on its known paths with the path each answer goes to, so each
// learns how the other sees it (SeenAs: behind a NAT, its public
// address) and what paths the other has (kept to re-link it). Links
// follow peers that move: a peer's fresh authenticated packet from a new
// address (a handshake with a new at or of a new session) moves its
// path. A mesh that moved itself tells its peers with Roam (called by
// its interface watcher when bound to an unspecified address and the
// machine's addresses change). A keepalive not answered within a second,
// or a link in use that went down, starts probing: handshakes with a new
// at to every path of the peer (relay pipes through its routers
// included; once down, the paths it listed too) after 1, 2, 4... s up to
// Keepalive, until it answers. See roam.go and path_channel.go.
//
// # Streams
//
// Stream adapts a reliable channel to io.ReadWriteCloser with CloseWrite.
// It is the telehash "stream" channel type (channels/stream.md) as
// telehash-js implements it: StreamChunk-byte packets, "frag":true on all
// but the last packet of each Write; received bodies are concatenated.
//
// # Interop
//
// testdata/telehash_js_vectors.json holds packets made by telehash-js
// (testdata/gen_vectors.js) that the tests decode;
// testdata/go_vectors.json holds packets made here that
// testdata/check_go_vectors.js checks with telehash-js.
// TestLiveTelehashJS and TestMeshTelehashJS (testdata/js_mesh_peer.js:
// links both ways, reliable echo channel, streams both ways) run a live
// telehash-js peer over UDP on 127.0.0.1 when TELEHASH_JS_NODE_PATH names
// its node_modules; otherwise they are skipped (they fail instead under
// GRD_REQUIRE_PEERS=1).
package telehash
