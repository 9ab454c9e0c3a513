// A telehash-js 0.4.18 peer with its peer (routing) extension, for the
// routing interop tests (router_js_test.go). As js_mesh_peer.js, plus:
//   {"cmd":"linkvia","keys":{...},"router":hashname} -> links to a peer
//     through a router (a "peer" path), {"event":"link","up":true}
// and a "stream" goes to the last link. It routes for its links, as
// telehash-js does by default.
// Based on js_mesh_peer.js, driven by JSON lines on stdin; it answers
// with JSON lines on stdout:
//   {"event":"ready","hashname":...,"keys":...,"paths":[...]}
//   {"cmd":"link","link":{"keys":...,"paths":[...]}}  -> {"event":"link","up":true}
//   {"cmd":"stream","size":N}  -> opens a stream to the linked peer, writes N
//     random bytes, ends, and reports {"event":"sent","sha256"} and, once the
//     peer's end arrives, {"event":"streamdone","bytes","sha256"} of what came back.
// Incoming "stream" channels are echoed (what arrives is written back, the
// end is answered with end) and reported as {"event":"echoed","bytes","sha256"}.
// Incoming "echo" channels (reliable) send every body back and answer end.
// It binds udp4 on 127.0.0.1 only (no LAN discovery) and accepts any link.
var out = process.stdout;
console.log = function () {}; // e3x prints "new ephemeral", the router "routing packet to"
var os = require('os');
os.networkInterfaces = function () {
  return { lo: [{ address: '127.0.0.1', family: 'IPv4', internal: true }] };
};
var crypto = require('crypto');
var readline = require('readline');
var nacl = require('tweetnacl');
var th = require('telehash');
var kp = nacl.box.keyPair();
var id = { keys: { '3a': th.base32.encode(Buffer.from(kp.publicKey)) },
           secrets: { '3a': th.base32.encode(Buffer.from(kp.secretKey)) } };
function emit(o) { out.write(JSON.stringify(o) + '\n'); }

var echo = {
  name: 'echo',
  mesh: function (mesh, cbExt) {
    cbExt(undefined, { open: { echo: function (args, open, cbOpen) {
      var chan = this.x.channel(open);
      chan.receiving = function (err, packet, cbChan) {
        if (err) { process.stderr.write('echo channel error ' + err + '\n'); return cbChan(); }
        if (packet.body && packet.body.length) chan.send({ json: {}, body: packet.body });
        if (packet.json.end) chan.send({ json: { end: true } });
        cbChan();
      };
      chan.receive(open);
    } } });
  }
};

var link;
th.mesh({ id: id, ip: '127.0.0.1', port: 0,
          extensions: { udp4: require('telehash-udp4'), path: th.extensions.path, peer: th.extensions.peer,
                        stream: th.extensions.stream, echo: echo } },
  function (err, mesh) {
    if (err) { process.stderr.write('mesh error ' + err + '\n'); process.exit(1); }
    mesh.accept = function (from) { link = mesh.link(from); };
    mesh.stream(function (from, args, accept) {
      var s = accept();
      var h = crypto.createHash('sha256'), n = 0;
      s.on('data', function (d) { h.update(d); n += d.length; s.write(d); });
      s.on('end', function () { emit({ event: 'echoed', bytes: n, sha256: h.digest('hex') }); });
      s.on('error', function (e) { emit({ event: 'error', err: String(e) }); });
    });
    emit({ event: 'ready', hashname: mesh.hashname, keys: mesh.keys, paths: mesh.paths() });
    readline.createInterface({ input: process.stdin }).on('line', function (line) {
      var cmd = JSON.parse(line);
      if (cmd.cmd == 'link' || cmd.cmd == 'linkvia') {
        link = cmd.cmd == 'link' ? mesh.link(cmd.link)
          : mesh.link({ keys: cmd.keys, paths: [{ type: 'peer', hn: cmd.router }] });
        var told = false;
        link.status(function (err) {
          if (err || told) return;
          told = true;
          emit({ event: 'link', up: true });
        });
      }
      if (cmd.cmd == 'stream') {
        var s = link.stream(th.lob.encode({ from: 'js' }));
        var data = crypto.randomBytes(cmd.size);
        var h = crypto.createHash('sha256'), n = 0;
        s.on('data', function (d) { h.update(d); n += d.length; });
        s.on('end', function () { emit({ event: 'streamdone', bytes: n, sha256: h.digest('hex') }); });
        s.on('error', function (e) { emit({ event: 'error', err: String(e) }); });
        for (var off = 0; off < data.length; off += 16384) s.write(data.slice(off, off + 16384));
        s.end();
        emit({ event: 'sent', bytes: data.length, sha256: crypto.createHash('sha256').update(data).digest('hex') });
      }
    }).on('close', function () { process.exit(0); });
  });
setTimeout(function () { process.exit(0); }, 60000); // never outlive the test
