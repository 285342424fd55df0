// Node.js TLS peer for the X25519MLKEM768 interop tests (Node 24 = OpenSSL 3.5 with the built-in
// group; Debian's Node 20 = OpenSSL 3.0 without it).
//   node node_peer.js server <key.pem> <cert.pem> <groups>   prints "PORT <n>", serves one client
//   node node_peer.js client <port> <groups>
// Output lines: "CONNECTED", "REPLY <line>", "KEYINFO <json>", "HANDSHAKE_FAILED <msg>" (exit 2).
'use strict';
const tls = require('tls');
const fs = require('fs');

const [mode, ...args] = process.argv.slice(2);
const fail = (msg) => { console.log(`HANDSHAKE_FAILED ${msg}`); process.exit(2); };
setTimeout(() => { console.log('TIMEOUT'); process.exit(1); }, 10000).unref();

if (mode === 'server') {
  const [keyFile, certFile, groups] = args;
  const server = tls.createServer({
    key: fs.readFileSync(keyFile), cert: fs.readFileSync(certFile), ecdhCurve: groups,
  }, (sock) => {
    console.log('CONNECTED');
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString();
      if (buf.includes('\n')) {
        sock.end(`pong ${buf.trim()} node\n`);
        server.close();
      }
    });
  });
  server.on('tlsClientError', (e) => { server.close(); fail(e.code || e.message); });
  server.listen(0, '127.0.0.1', () => console.log(`PORT ${server.address().port}`));
} else if (mode === 'client') {
  const [port, groups] = args;
  const sock = tls.connect({ host: '127.0.0.1', port: Number(port), ecdhCurve: groups, rejectUnauthorized: false }, () => {
    console.log('CONNECTED');
    console.log(`KEYINFO ${JSON.stringify(sock.getEphemeralKeyInfo())}`);
    sock.write('ping\n');
  });
  let buf = '';
  sock.on('data', (d) => { buf += d.toString(); });
  sock.on('end', () => { console.log(`REPLY ${buf.trim()}`); process.exit(0); });
  sock.on('error', (e) => fail(e.code || e.message));
} else {
  console.error('usage: node_peer.js server|client ...');
  process.exit(64);
}
