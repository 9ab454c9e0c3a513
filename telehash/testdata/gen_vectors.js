// Generates telehash_js_vectors.json from telehash-js 0.4.18 (e3x, lob-enc,
// hashname). Not used by `go test`; run by hand to regenerate the pinned
// vectors:
//   (install telehash-js in /tmp/thjs as described in shared/notes/telehash.md)
//   NODE_PATH=/tmp/thjs/node_modules node gen_vectors.js > telehash_js_vectors.json
// Randomness is replaced by a seeded SHA-256 counter so runs are repeatable.
var crypto = require('crypto');
var ctr = 0;
crypto.randomBytes = function (n) {
  var out = Buffer.alloc(0);
  while (out.length < n) {
    out = Buffer.concat([out, crypto.createHash('sha256').update('vectors-' + (ctr++)).digest()]);
  }
  return out.slice(0, n);
};
console.log = console.error; // e3x prints "new ephemeral"
var nacl = require('tweetnacl');
var lob = require('lob-enc');
var hashname = require('hashname');
var e3x = require('e3x');
var b32 = hashname.base32;

function kp(seed) {
  var sec = crypto.createHash('sha256').update(seed).digest();
  var k = nacl.box.keyPair.fromSecretKey(new Uint8Array(sec));
  return { key: Buffer.from(k.publicKey), secret: Buffer.from(k.secretKey) };
}
function hex(b) { return Buffer.from(b).toString('hex'); }

async function main() {
  var out = {};
  out.base32 = ['', 'f', 'fo', 'foo', 'foob', 'fooba', 'foobar', '\u00ff\u0000\u00aa'].map(function (s) {
    var b = Buffer.from(s, 'binary');
    return { hex: hex(b), b32: b32.encode(b) };
  });
  out.hashnames = [
    { keys: { '1a': 'an7lbl5e6vk4ql6nblznjicn5rmf3lmzlm', '3a': 'eg3fxjnjkz763cjfnhyabeftyf75m2s4gll3gvmuacegax5h6nia' } },
    { keys: { '3a': 'hp6yglmmqwcbw5hno37uauh6fn6dx5oj7s5vtapaifrur2jv6zha' } },
    { keys: { '1a': b32.encode(Buffer.alloc(21, 7)), '2a': b32.encode(Buffer.alloc(270, 9)), '3a': b32.encode(kp('c').key) } },
  ].map(function (v) { v.hashname = hashname.fromKeys(v.keys); return v; });

  var plain = lob.encode({ type: 'test', c: 1 }, Buffer.from('cloaked body'));
  out.cloak = [1, 3].map(function (r) {
    return { rounds: r, plain: hex(plain), cloaked: hex(lob.cloak(plain, null, r)) };
  });

  var A = kp('alice'), B = kp('bob');
  var A1a = Buffer.alloc(21, 0x1a); // opaque extra key: only its intermediate matters
  var keysA = { '1a': A1a, '3a': A.key }, keysB = { '3a': B.key };
  var selfA = e3x.self({ pairs: { '3a': A } }), selfB = e3x.self({ pairs: { '3a': B } });
  var xA = selfA.exchange({ csid: '3a', key: B.key }), xB = selfB.exchange({ csid: '3a', key: A.key });
  await xA.load; await xB.load;
  xA.at(1700000000); xB.at(1700000000);
  function inner(keys) {
    var ims = hashname.intermediates(keys); ims['3a'] = null;
    return { json: { type: 'link' }, body: lob.encode(ims, keys['3a']) };
  }
  var msgA = await xA.handshake(inner(keysA));
  var msgB = await xB.handshake(inner(keysB));
  var innA = await selfB.decrypt(msgA), innB = await selfA.decrypt(msgB);
  var syncB = await xB.sync(msgA, innA), syncA = await xA.sync(msgB, innB);
  xA.sending = function () {}; xB.sending = function () {};
  var chans = [
    { json: { c: 1, type: 'test', seq: 1 }, body: Buffer.from('hello from js') },
    { json: { c: 1, ack: 0, miss: [50] }, body: Buffer.alloc(0) },
    { json: { c: 3, end: true, err: 'boom', extra: { x: [1, 2] } }, body: Buffer.from([0, 1, 2, 255]) },
  ];
  var fromA = [];
  for (var i = 0; i < chans.length; i++) {
    var pkt = await xA.send({ json: chans[i].json, body: chans[i].body });
    var back = await xB.receive(lob.decode(Buffer.from(pkt)));
    if (JSON.stringify(back.json) != JSON.stringify(chans[i].json)) throw new Error('js roundtrip');
    fromA.push({ json: chans[i].json, body: hex(chans[i].body), packet: hex(pkt) });
  }
  var fromB = await xB.send({ json: { c: 2, type: 'reply', seq: 1 }, body: Buffer.from('hi from b') });
  out.exchange = {
    a: { key: hex(A.key), secret: hex(A.secret), key1a: hex(A1a), order: xA.order,
         hashname: hashname.fromKeys(keysA), eph_key: hex(xA.cs.ephemeral.publicKey),
         eph_secret: hex(xA.cs.ephemeral.secretKey), token: hex(xA.token), at: xA.at(), sync: syncA },
    b: { key: hex(B.key), secret: hex(B.secret), order: xB.order,
         hashname: hashname.fromKeys(keysB), eph_key: hex(xB.cs.ephemeral.publicKey),
         eph_secret: hex(xB.cs.ephemeral.secretKey), token: hex(xB.token), at: xB.at(), sync: syncB },
    msg_a_to_b: hex(msgA), msg_a_at: innA.json.at,
    msg_b_to_a: hex(msgB), msg_b_at: innB.json.at,
    channel_a_to_b: fromA,
    channel_b_to_a: { json: { c: 2, type: 'reply', seq: 1 }, body: hex(Buffer.from('hi from b')), packet: hex(fromB) },
  };
  process.stdout.write(JSON.stringify(out, null, 1) + '\n');
}
main().catch(function (e) { console.error(e); process.exit(1); });
