package telehash

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"math"
	"sync"
	"time"
)

// Exchange is the encryption state between the local identity and one
// remote endpoint over cipher set 3a (spec: e3x/exchange.md): the local
// ephemeral key pair and routing token, the handshake at value, the
// session keys once a handshake was accepted, and channel id allocation.
// It is safe for concurrent use. Transport concerns (cloaking, resending
// handshakes at 1, 3, 7, 15 s, keepalives) belong to the caller.
type Exchange struct {
	rnd       io.Reader
	local     *Identity
	remoteKey [KeySize3a]byte
	order     Order
	eph       *Keypair
	token     Token
	// endpoint is beforenm(remoteKey, local secret): the AUTH key of
	// handshakes both ways. sealSecret is beforenm(remoteKey, eph
	// secret): it encrypts our handshakes. Cached, handshakes of a known
	// exchange cost no X25519.
	endpoint, sealSecret [32]byte

	mu          sync.Mutex
	at          uint64
	session     *Session3a
	remoteEph   [KeySize3a]byte
	remoteToken Token
	remoteAt    uint64 // highest at received in the current session
	nextCID     uint64
	// remoteEphSecret is beforenm(remoteEph, local secret): it decrypts
	// the peer's handshakes of the current session.
	remoteEphSecret [32]byte
	// oldEphs are the peer's ephemeral keys of earlier sessions: their
	// handshakes are replays.
	oldEphs [maxOldEphs][KeySize3a]byte
	nOld    int
	// lastKnown: no session, but remoteEph and remoteAt are those of a
	// forgotten exchange's session (restoreHistory): the same key with
	// a higher at resumes it, with an at not above is a replay.
	lastKnown bool
}

// maxOldEphs is how many earlier sessions of a peer an exchange
// remembers to recognize their replayed handshakes at once.
const maxOldEphs = 8

// NewExchange creates an exchange from local to the remote endpoint whose
// 3a key is remoteKey. It generates the exchange ephemeral key pair, and
// starts at from the current Unix time adjusted to the local order (as
// telehash-js does). rnd is the randomness source; nil means crypto/rand.
func NewExchange(rnd io.Reader, local *Identity, remoteKey []byte) (*Exchange, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	eph, err := GenerateKeypair(rnd)
	if err != nil {
		return nil, err
	}
	return newExchange(rnd, local, remoteKey, eph)
}

// newExchange builds an exchange around a given ephemeral key pair.
func newExchange(rnd io.Reader, local *Identity, remoteKey []byte, eph *Keypair) (*Exchange, error) {
	rk, err := key32(remoteKey)
	if err != nil {
		return nil, err
	}
	// Reject weak remote keys up front.
	endpoint, err := beforenm(rk, &local.kp.Secret)
	if err != nil {
		return nil, err
	}
	sealSecret, err := beforenm(rk, &eph.Secret)
	if err != nil {
		return nil, err
	}
	x := &Exchange{rnd: rnd, local: local, remoteKey: *rk, eph: eph, endpoint: endpoint, sealSecret: sealSecret}
	x.order = OrderOf(local.kp.Public[:], rk[:])
	x.token, _ = TokenFromBody(eph.Public[:])
	x.nextCID = uint64(x.order)
	if x.at, err = AdjustAt(uint64(time.Now().Unix()), x.order); err != nil {
		return nil, err
	}
	return x, nil
}

// Order returns the local endpoint's order in this exchange.
func (x *Exchange) Order() Order { return x.order }

// Token returns the local routing token: the one the remote puts on
// channel packets to us, SHA256(localEph[0:16])[0:16] (spec:
// e3x/handshake.md "Routing Token").
func (x *Exchange) Token() Token { return x.token }

// At returns the current at value.
func (x *Exchange) At() uint64 {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.at
}

// Resync raises at to a new value of local parity for a keepalive or a
// new handshake (telehash-js link.sync: at+1, parity adjusted) and
// returns it.
func (x *Exchange) Resync() (uint64, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	a, err := AdjustAt(x.at+1, x.order)
	if err != nil {
		return 0, err
	}
	x.at = a
	return a, nil
}

// Handshake returns a new encrypted link handshake message carrying the
// current at (spec: e3x/handshake.md). Each call uses a fresh nonce;
// resends should repeat the same bytes.
func (x *Exchange) Handshake() ([]byte, error) {
	inner, err := EncodeLinkInner(x.local, CS3a, x.At())
	if err != nil {
		return nil, err
	}
	body, err := sealMessage3aWith(x.rnd, &x.eph.Public, &x.sealSecret, &x.endpoint, inner)
	if err != nil {
		return nil, err
	}
	return EncodeMessage(CS3a, body)
}

// SyncResult tells the caller what a received handshake changed.
type SyncResult struct {
	// InSync is true when the handshake carried our current at: no reply
	// is needed. Otherwise the caller must reply with Handshake().
	InSync bool
	// NewSession is true when the handshake created a new session (new
	// remote ephemeral key): channel ids restarted and open channels of
	// the previous session must be failed (spec: e3x/channels.md "When a
	// new exchange is established, it errors any OPEN channels").
	NewSession bool
	// Stale is true when the handshake carried a new ephemeral key with
	// an at not above the current session's: it was ignored and at was
	// raised; reply with Handshake() so a restarted peer can catch up
	// (sparingly: it may be a recorded handshake that never arrived).
	Stale bool
	// Replay is true when the handshake is not newer than what the
	// exchange already accepted: the current session's with an at not
	// above the highest received (a duplicate or a replay), or one of an
	// earlier session. Nothing changed; it needs no reply, except to a
	// peer on its known path that may have missed ours.
	Replay bool
	// At is the exchange's at after processing.
	At uint64
}

// Sync applies a handshake opened with OpenHandshake (spec:
// e3x/handshake.md "Sequencing with at", "Routing Token"):
//   - the handshake must come from the exchange's remote key;
//   - a handshake of the current session (same remote ephemeral key)
//     whose at is not above the highest received, or one of an earlier
//     session, is a replay (or a duplicate) and changes nothing;
//   - a new remote ephemeral key starts a new session, unless its at is
//     not above the highest at of the current session (a restarted peer,
//     or a replay of a handshake never received): then the session is
//     kept, at is raised and the caller replies, so a live peer answers
//     with that fresh at and is accepted, while a replayed handshake
//     cannot;
//   - a higher at is adopted and must be answered with that value; an
//     equal at means in sync; a lower one (still above the highest
//     received) is answered with ours.
func (x *Exchange) Sync(h *Handshake) (SyncResult, error) { return x.sync(h, true) }

// sync is Sync; catchUp false leaves at alone on a stale handshake (it
// is not going to be answered).
func (x *Exchange) sync(h *Handshake, catchUp bool) (SyncResult, error) {
	if h.CSID != CS3a || !bytes.Equal(h.Key, x.remoteKey[:]) {
		return SyncResult{}, fmt.Errorf("%w: from %s", ErrKeyMismatch, h.Hashname)
	}
	if h.At == 0 || h.At > MaxAt {
		return SyncResult{}, fmt.Errorf("%w: at %d", ErrMalformed, h.At)
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	var res SyncResult
	switch {
	case (x.session != nil || x.lastKnown) && h.Ephemeral == x.remoteEph && h.At <= x.remoteAt:
		return SyncResult{Replay: true, At: x.at}, nil
	case x.session != nil && h.Ephemeral == x.remoteEph:
	case x.isOldEphLocked(h.Ephemeral):
		return SyncResult{Replay: true, At: x.at}, nil
	case h.At <= x.remoteAt:
		if catchUp {
			a, err := AdjustAt(max(x.at, x.remoteAt)+1, x.order)
			if err != nil {
				return SyncResult{}, err
			}
			x.at = a
		}
		return SyncResult{Stale: true, At: x.at}, nil
	default:
		s, err := NewSession3a(x.eph, h.Ephemeral[:])
		if err != nil {
			return SyncResult{}, err
		}
		var secret [32]byte
		if h.ephSecret != nil {
			secret = *h.ephSecret
		} else if secret, err = beforenm(&h.Ephemeral, &x.local.kp.Secret); err != nil {
			return SyncResult{}, err
		}
		if (x.session != nil || x.lastKnown) && x.remoteEph != h.Ephemeral {
			x.oldEphs[x.nOld%maxOldEphs] = x.remoteEph
			x.nOld++
		}
		x.lastKnown = false
		x.session, x.remoteEph, x.remoteToken, x.remoteEphSecret = s, h.Ephemeral, h.Token, secret
		x.nextCID = uint64(x.order)
		res.NewSession = true
	}
	x.remoteAt = h.At
	switch {
	case h.At == x.at:
		res.InSync = true
	case h.At > x.at:
		x.at = h.At
	}
	res.At = x.at
	return res, nil
}

// isOldEphLocked reports whether eph was the peer's in an earlier session.
func (x *Exchange) isOldEphLocked(eph [KeySize3a]byte) bool {
	for i := range min(x.nOld, maxOldEphs) {
		if x.oldEphs[i] == eph {
			return true
		}
	}
	return false
}

// history returns what the exchange knows of the peer's sessions: the
// highest at received, the last session's ephemeral key (if any) and
// those of earlier sessions.
func (x *Exchange) history() (remoteAt uint64, last *[KeySize3a]byte, olds [][KeySize3a]byte) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.session != nil || x.lastKnown {
		e := x.remoteEph
		last = &e
	}
	for i := range min(x.nOld, maxOldEphs) {
		olds = append(olds, x.oldEphs[i])
	}
	return x.remoteAt, last, olds
}

// restoreHistory gives a new exchange (no session yet) what an earlier
// exchange with the same peer knew (see history), so that the peer's old
// handshakes stay replays: only a handshake with a higher at, and a new
// ephemeral key or the last session's, starts a session.
func (x *Exchange) restoreHistory(remoteAt uint64, last *[KeySize3a]byte, olds [][KeySize3a]byte) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.session != nil {
		return
	}
	x.remoteAt = max(x.remoteAt, remoteAt)
	if last != nil {
		x.remoteEph, x.lastKnown = *last, true
	}
	for _, e := range olds {
		if !x.isOldEphLocked(e) {
			x.oldEphs[x.nOld%maxOldEphs] = e
			x.nOld++
		}
	}
}

// openCurrent decrypts and authenticates a handshake message whose
// ephemeral key is the one of the current session, with the cached
// secrets: no X25519.
func (x *Exchange) openCurrent(msg []byte) (*Handshake, error) {
	body, err := handshakeBody(msg)
	if err != nil {
		return nil, err
	}
	x.mu.Lock()
	ok := x.session != nil && bytes.Equal(body[:KeySize3a], x.remoteEph[:])
	secret := x.remoteEphSecret
	x.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w: not the current session's ephemeral key", ErrDecrypt)
	}
	inner, err := openMessage3aWith(&secret, body)
	if err != nil {
		return nil, fmt.Errorf("handshake: %w", err)
	}
	h, err := ParseLinkInner(CS3a, inner)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(h.Key, x.remoteKey[:]) {
		return nil, fmt.Errorf("%w: from %s", ErrKeyMismatch, h.Hashname)
	}
	if err := h.verify(x.local, body, &x.endpoint); err != nil {
		return nil, err
	}
	copy(h.Ephemeral[:], body[:KeySize3a])
	h.ephSecret = &secret
	h.Token, _ = TokenFromBody(body)
	return h, nil
}

// NextChannelID allocates the next local channel id: odd from 1 for the
// Odd endpoint, even from 2 for the Even one, increasing by 2 (spec:
// e3x/channels.md "Channel IDs").
func (x *Exchange) NextChannelID() (uint32, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.nextCID > math.MaxUint32 {
		return 0, fmt.Errorf("%w: channel ids used up, a new exchange is needed", ErrExhausted)
	}
	c := uint32(x.nextCID)
	x.nextCID += 2
	return c, nil
}

// IsLocalChannel reports whether channel id c was (or would be) allocated
// by the local endpoint, as telehash-js chan.isOut does.
func (x *Exchange) IsLocalChannel(c uint32) bool { return c%2 == uint32(x.order)%2 }

// SealChannel encrypts a channel inner packet (LOB bytes) into an outer
// channel packet: LOB(no head, remoteToken || 3a channel BODY) (spec:
// e3x/channels.md "Packet Encryption", notes "Channel packet").
func (x *Exchange) SealChannel(inner []byte) ([]byte, error) {
	x.mu.Lock()
	s, tok := x.session, x.remoteToken
	x.mu.Unlock()
	if s == nil {
		return nil, ErrNoSession
	}
	body, err := s.Seal(x.rnd, tok, inner)
	if err != nil {
		return nil, err
	}
	return EncodePacket(nil, body)
}

// OpenChannel decrypts an outer channel packet (uncloaked LOB bytes with
// an empty head) carrying the local token and returns the inner bytes.
func (x *Exchange) OpenChannel(outer []byte) ([]byte, error) {
	p, err := DecodePacket(outer)
	if err != nil {
		return nil, fmt.Errorf("channel packet: %w", err)
	}
	if len(p.Head) != 0 {
		return nil, fmt.Errorf("%w: channel packet with a %d byte head", ErrMalformed, len(p.Head))
	}
	if len(p.Body) < TokenSize {
		return nil, fmt.Errorf("%w: channel packet of %d bytes", ErrMalformed, len(p.Body))
	}
	if !Token(p.Body[:TokenSize]).Equal(x.token) {
		return nil, ErrWrongToken
	}
	x.mu.Lock()
	s := x.session
	x.mu.Unlock()
	if s == nil {
		return nil, ErrNoSession
	}
	return s.Open(p.Body)
}
