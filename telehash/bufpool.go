package telehash

import "sync"

// Buffers recycled on the bulk paths, so that a stream's packets do not
// each leave a 1.3 KB buffer to the garbage collector on both sides:
//
//   - inner packets being sent: innerLocked encodes into one, and it is
//     recycled once sealed (sendRaw, sendInners);
//   - decrypted packets received: openChannelFast decrypts into one, and
//     a Stream recycles it once read (Stream.Read). Packets returned by
//     Channel.Receive, whose Body the caller keeps, are never recycled.
//
// Only buffers of the pool's exact capacity go back.

// innerCap is the capacity of a pooled inner packet: the largest that
// fits a datagram, and room for padInners.
const innerCap = maxInnerSize + maxPad

var innerPool = sync.Pool{New: func() any { return new([innerCap]byte) }}

// getInner returns an empty buffer of innerCap capacity.
func getInner() []byte { return innerPool.Get().(*[innerCap]byte)[:0] }

// putInner recycles b if it came from getInner. b must not be used after.
func putInner(b []byte) {
	if cap(b) == innerCap {
		innerPool.Put((*[innerCap]byte)(b[:innerCap]))
	}
}

// recvCap is the capacity of a pooled decrypted packet.
const recvCap = maxReadDatagram

var recvPool = sync.Pool{New: func() any { return new([recvCap]byte) }}

// getRecv returns an empty buffer for a decrypted packet of n bytes.
func getRecv(n int) []byte {
	if n > recvCap {
		return make([]byte, 0, n)
	}
	return recvPool.Get().(*[recvCap]byte)[:0]
}

// putRecv recycles b if it came from getRecv. Nothing may refer to b
// after (nor to slices of it).
func putRecv(b []byte) {
	if cap(b) == recvCap {
		recvPool.Put((*[recvCap]byte)(b[:recvCap]))
	}
}
