// Package telehash implements the core of Telehash v3 (E3X) as spoken by
// telehash-js 0.4.18: base32, hashnames, LOB packets, cloaking, cipher set
// 3a, identities, link handshakes, exchanges and channel packets.
//
// The specification lives in shared/specs/telehash-v3; where it disagrees
// with telehash-js on the wire, this package follows telehash-js (see the
// comments on each function and shared/notes/telehash.md).
//
// Every parser of network input returns an error wrapping one of the
// sentinel errors (ErrMalformed, ErrTooLarge, ErrUnsupported, ErrDecrypt,
// ...) and never panics. Decoded packets may alias the caller's buffer.
//
// Interop: testdata/telehash_js_vectors.json holds packets made by
// telehash-js (testdata/gen_vectors.js) that the tests decode;
// testdata/go_vectors.json holds packets made here that
// testdata/check_go_vectors.js checks with telehash-js. TestLiveTelehashJS
// links with a live telehash-js peer over UDP on 127.0.0.1 when
// TELEHASH_JS_NODE_PATH names its node_modules; otherwise it is skipped.
package telehash
