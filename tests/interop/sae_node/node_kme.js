// A stand-in KME written with Node.js's https module (Node 24 = OpenSSL 3.5): mutual TLS, only the
// groups given, canned ETSI 014 Get status. Prints "PORT <n>" and serves until killed.
//   node node_kme.js KEY CERT CA GROUPS
'use strict';
const https = require('https');
const fs = require('fs');
const [key, cert, ca, groups] = process.argv.slice(2);
const server = https.createServer({
  key: fs.readFileSync(key), cert: fs.readFileSync(cert), ca: fs.readFileSync(ca),
  requestCert: true, rejectUnauthorized: true, ecdhCurve: groups, minVersion: 'TLSv1.3',
}, (req, res) => {
  const m = req.url.match(/^\/api\/v1\/keys\/([^/]+)\/status$/);
  if (!m || req.method !== 'GET') { res.writeHead(404, { 'Content-Type': 'application/json' }); res.end('{"message":"no"}'); return; }
  res.writeHead(200, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify({
    source_KME_ID: 'KME_A', target_KME_ID: 'KME_B', master_SAE_ID: 'SAE_A', slave_SAE_ID: decodeURIComponent(m[1]),
    key_size: 256, stored_key_count: 7, max_key_count: 100, max_key_per_request: 8, max_key_size: 1024,
    min_key_size: 64, max_SAE_ID_count: 0,
  }));
});
server.listen(0, '127.0.0.1', () => console.log(`PORT ${server.address().port}`));
