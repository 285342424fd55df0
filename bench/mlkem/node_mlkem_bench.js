// OpenSSL 3.5 reference timings for ML-KEM-768 through Node.js 24's crypto module. Timed in a
// loop inside node (process start excluded). Prints one JSON line: microseconds per operation.
//   node node_mlkem_bench.js <iterations>
'use strict';
const crypto = require('crypto');
const n = Number(process.argv[2] || 2000);

function time(fn) {
  for (let i = 0; i < Math.min(200, n); i++) fn();  // warm-up
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) fn();
  return Number(process.hrtime.bigint() - t0) / 1000 / n;
}

const kp = crypto.generateKeyPairSync('ml-kem-768');
const { ciphertext } = crypto.encapsulate(kp.publicKey);
const out = {
  openssl: process.versions.openssl,
  keygen_us: time(() => crypto.generateKeyPairSync('ml-kem-768')),
  encaps_us: time(() => crypto.encapsulate(kp.publicKey)),
  decaps_us: time(() => crypto.decapsulate(kp.privateKey, ciphertext)),
};
console.log(JSON.stringify(out));
