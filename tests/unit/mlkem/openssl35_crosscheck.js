// Cross-check helper for openssl35_crosscheck_test.cpp, using OpenSSL 3.5 through Node.js 24.
//   node openssl35_crosscheck.js gen <ML-KEM-512|768|1024> <count>
//     random key pairs from OpenSSL: seed (d||z), ek, an encapsulation (c, K) and the implicit-
//     rejection key for a random ciphertext; one JSON array on stdout (hex).
//   node openssl35_crosscheck.js decaps <file.json>
//     file: [{alg, seed, ek, c}] ciphertexts made by us; prints [K] decapsulated by OpenSSL.
'use strict';
const crypto = require('crypto');
const hex = (b) => Buffer.from(b).toString('hex');
const b64u = (h) => Buffer.from(h, 'hex').toString('base64url');
const ctSize = { 'ML-KEM-512': 768, 'ML-KEM-768': 1088, 'ML-KEM-1024': 1568 };

const [mode, a, b] = process.argv.slice(2);
if (mode === 'gen') {
  const alg = a;
  const out = [];
  for (let i = 0; i < Number(b); i++) {
    const kp = crypto.generateKeyPairSync(alg.toLowerCase());
    const jwk = kp.privateKey.export({ format: 'jwk' });
    const enc = crypto.encapsulate(kp.publicKey);
    const rnd = crypto.randomBytes(ctSize[alg]);
    out.push({
      seed: hex(Buffer.from(jwk.priv, 'base64url')), ek: hex(Buffer.from(jwk.pub, 'base64url')),
      c: hex(enc.ciphertext), K: hex(enc.sharedKey), c_rand: hex(rnd), K_rand: hex(crypto.decapsulate(kp.privateKey, rnd)),
    });
  }
  console.log(JSON.stringify(out));
} else if (mode === 'decaps') {
  const cases = JSON.parse(require('fs').readFileSync(a, 'utf8'));
  console.log(JSON.stringify(cases.map((t) => {
    const key = crypto.createPrivateKey({ format: 'jwk', key: { kty: 'AKP', alg: t.alg, priv: b64u(t.seed), pub: b64u(t.ek) } });
    return hex(crypto.decapsulate(key, Buffer.from(t.c, 'hex')));
  })));
} else {
  console.error('usage: openssl35_crosscheck.js gen ALG N | decaps FILE');
  process.exit(64);
}
