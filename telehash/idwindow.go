package telehash

// idWindowSize is how far below the highest channel id a peer opened an
// open may still arrive (reordered on the way) and be accepted once.
const idWindowSize = 64

// idWindow tracks the channel ids a peer opened in one session, so that
// a recorded channel open replayed later does not open the channel (and
// run its handler) again (spec: e3x/channels.md "channel ids must
// increase"). telehash-js numbers its channels 1, 3, 5... or 2, 4, 6...
// in the order it opens them, from the start of each session; opens sent
// close together may arrive out of order, so, as the anti-replay windows
// of IPsec and DTLS do, ids up to idWindowSize steps below the highest
// are accepted once each, and older ones never.
type idWindow struct {
	max  uint32 // highest id accepted, 0 for none
	seen uint64 // bit i: id max-2i was accepted
}

// fresh reports whether id may open a channel: never accepted in this
// session and not too old.
func (w *idWindow) fresh(id uint32) bool {
	if id > w.max {
		return true
	}
	d := (w.max - id) / 2
	return d < idWindowSize && w.seen&(1<<d) == 0
}

// accept records id as used; fresh(id) must hold.
func (w *idWindow) accept(id uint32) {
	if id > w.max {
		shift := (id - w.max) / 2
		if shift >= idWindowSize {
			w.seen = 0
		} else {
			w.seen <<= shift
		}
		w.seen |= 1
		w.max = id
		return
	}
	w.seen |= 1 << ((w.max - id) / 2)
}
