// A telehash-js 0.4.18 peer for TestLiveTelehashJS (live_test.go), which
// runs only when TELEHASH_JS_NODE_PATH points at telehash-js's
// node_modules (see shared/notes/telehash.md for the install recipe):
//   TELEHASH_JS_NODE_PATH=/tmp/thjs/node_modules go test ./telehash -run Live -v
// It binds udp4 on 127.0.0.1 (no LAN discovery), accepts any link, serves
// a reliable "echo" channel, and prints its link JSON on stdout.
var out = process.stdout;
console.log = console.error; // e3x prints "new ephemeral"
var os = require('os');
os.networkInterfaces = function () {
  return { lo: [{ address: '127.0.0.1', family: 'IPv4', internal: true }] };
};
var nacl = require('tweetnacl');
var th = require('telehash');
var kp = nacl.box.keyPair();
var id = { keys: { '3a': th.base32.encode(Buffer.from(kp.publicKey)) },
           secrets: { '3a': th.base32.encode(Buffer.from(kp.secretKey)) } };
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
th.mesh({ id: id, ip: '127.0.0.1', port: 0,
          extensions: { udp4: require('telehash-udp4'), path: th.extensions.path, echo: echo } },
  function (err, mesh) {
    if (err) { process.stderr.write('mesh error ' + err + '\n'); process.exit(1); }
    mesh.accept = function (from) { mesh.link(from); };
    out.write(JSON.stringify({ hashname: mesh.hashname, keys: mesh.keys, paths: mesh.paths() }) + '\n');
  });
setTimeout(function () { process.exit(0); }, 30000); // never outlive the test
process.stdin.on('end', function () { process.exit(0); });
process.stdin.resume();
