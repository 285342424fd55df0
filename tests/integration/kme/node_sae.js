// An ETSI 014 SAE written with Node.js's https module (OpenSSL 3.5 in Node 24, 3.0 in Node 20):
//   node node_sae.js URL CA CERT KEY GROUPS   -> prints "STATUS <code> <body>" or "TLS_FAILED <code>"
'use strict';
const https = require('https');
const fs = require('fs');
const [url, ca, cert, key, groups] = process.argv.slice(2);
setTimeout(() => { console.log('TIMEOUT'); process.exit(1); }, 10000).unref();
const req = https.request(url, {
  ca: fs.readFileSync(ca), cert: fs.readFileSync(cert), key: fs.readFileSync(key), ecdhCurve: groups,
  minVersion: 'TLSv1.3', servername: 'localhost',
}, (res) => {
  let body = '';
  res.on('data', (d) => { body += d; });
  res.on('end', () => { console.log(`STATUS ${res.statusCode} ${body}`); process.exit(0); });
});
req.on('error', (e) => { console.log(`TLS_FAILED ${e.code || e.message}`); process.exit(2); });
req.end();
