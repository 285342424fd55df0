#!/usr/bin/env python3
"""Turns the key log of a strongSwan 6.1 initiator (charon filelog, ike = 4, chd = 4), as written by
capture-strongswan61.sh, into the known-answer vectors strongswan61_addke.json.

strongSwan dumps every derived value as "<label> => N bytes @ addr" followed by hex rows; rows of
different worker threads may interleave, so dumps are collected per thread. The extractor walks
the dumps in log order (IKE_SA_INIT, IKE_INTERMEDIATE, IKE_AUTH, child SA, child rekey with PFS,
IKE rekey) and checks every relation with Python's hmac before writing, so the file is consistent
with RFC 7296 / 9242 / 9370 as strongSwan computed them; the C++ runner then checks our code.
  usage: extract_vectors.py CAPTURE_DIR > strongswan61_addke.json
"""
import hashlib
import hmac
import json
import re
import sys

LINE = re.compile(r'^(\S+) (\d+)\[(\w+)\] (.*)$')
HEAD = re.compile(r'^(.*\S) => (\d+) bytes @ \S+$')
ROW = re.compile(r'^\s*(\d+): ((?:[0-9A-F]{2} )*[0-9A-F]{2})')


def dumps(path):
    """[(label, bytes)] in the order their header lines appear."""
    out, open_ = [], {}
    for line in open(path, encoding='utf-8', errors='replace'):
        m = LINE.match(line.rstrip('\n'))
        if not m:
            continue
        thread, text = m.group(2), m.group(4)
        r = ROW.match(text)
        if r and thread in open_:
            idx = open_[thread]
            assert int(r.group(1)) == len(out[idx][1]), f'row offset mismatch in {out[idx][0]}'
            out[idx][1].extend(bytes.fromhex(r.group(2).replace(' ', '')))
            continue
        open_.pop(thread, None)
        h = HEAD.match(text)
        if h:
            out.append((h.group(1), bytearray(), int(h.group(2))))
            open_[thread] = len(out) - 1
    for label, data, n in out:
        assert len(data) == n, f'{label}: {len(data)} bytes parsed, header says {n}'
    return [(label, bytes(data)) for label, data, _ in out]


def prf(key, data):
    return hmac.new(key, data, hashlib.sha512).digest()


def prf_plus(key, seed, n):
    out, t, i = b'', b'', 1
    while len(out) < n:
        t = prf(key, t + seed + bytes([i]))
        out += t
        i += 1
    return out[:n]


class Walk:
    def __init__(self, items):
        self.items, self.pos = items, 0

    def next(self, label):
        """the next dump with this label, from the current position on"""
        for i in range(self.pos, len(self.items)):
            if self.items[i][0] == label:
                self.pos = i + 1
                return self.items[i][1]
        raise SystemExit(f'extract: no "{label}" after position {self.pos}')


def ike_keys(w):
    return {'skeyseed': w.next('SKEYSEED'), 'sk_d': w.next('Sk_d secret'), 'sk_ei': w.next('Sk_ei secret'),
            'sk_er': w.next('Sk_er secret'), 'sk_pi': w.next('Sk_pi secret'), 'sk_pr': w.next('Sk_pr secret')}


def check_keys(k, ni, nr, spi_i, spi_r, what):
    lens = [len(k['sk_d']), len(k['sk_ei']), len(k['sk_er']), len(k['sk_pi']), len(k['sk_pr'])]
    km = prf_plus(k['skeyseed'], ni + nr + spi_i + spi_r, sum(lens))
    exp = k['sk_d'] + k['sk_ei'] + k['sk_er'] + k['sk_pi'] + k['sk_pr']
    assert km == exp, f'{what}: prf+(SKEYSEED, Ni|Nr|SPIi|SPIr) does not give the logged SK_*'


def spis_of(list_sas):
    m = re.search(r'ESTABLISHED, IKEv2, ([0-9a-f]{16})_i\*? ([0-9a-f]{16})_r', list_sas)
    return bytes.fromhex(m.group(1)), bytes.fromhex(m.group(2))


KE_NAMES = {'ecp521': 'ECP_521 (21)', 'x25519': 'CURVE_25519 (31)', 'curve25519': 'CURVE_25519 (31)',
            'mlkem512': 'ML_KEM_512 (35)', 'mlkem768': 'ML_KEM_768 (36)', 'mlkem1024': 'ML_KEM_1024 (37)'}


def handshake(d):
    w = Walk(dumps(f'{d}/west.log'))
    prov = open(f'{d}/provenance.txt').read().splitlines()
    prop = re.match(r'proposal (\S+),', prov[0]).group(1)
    kes = [t.split('_', 1)[-1] for t in prop.split('-')[2:]]     # ecp521, mlkem768, ...
    n_add = len(kes) - 1
    v = {'proposal': prop, 'provenance': prov, 'prf': 'PRF_HMAC_SHA2_512', 'encr_key_len': 36,
         'ke_methods': [KE_NAMES.get(k, k) for k in kes]}

    # IKE_SA_INIT (RFC 7296 2.14): SKEYSEED = prf(Ni | Nr, g^ir)
    sk0 = w.next('key exchange secret')
    assert w.next('additional key exchange secret') == b''
    nonces = w.next('nonces')
    ni, nr = nonces[:len(nonces) // 2], nonces[len(nonces) // 2:]
    k = ike_keys(w)
    assert prf(ni + nr, sk0) == k['skeyseed'], 'SKEYSEED(0)'
    init = {'ni': ni, 'nr': nr, 'sk0': sk0, **k}
    rounds, prev_ia = [], {'i': b'', 'r': b''}
    spi_i = spi_r = None
    for n in range(1, n_add + 1):
        # IKE_INTERMEDIATE n (RFC 9242 3.3.2): IntAuth_iN over the request, IntAuth_rN over the
        # response, each = prf(SK_p of the keys in use, IntAuth_(N-1) | A | P)
        ia = {}
        for side in ('i', 'r'):
            prev, ap, skp, val = w.next('IntAuth_N-1'), w.next('IntAuth_A|P'), w.next('SK_p'), w.next('IntAuth_N = prf(Sk_px, data)')
            assert prev == prev_ia[side], f'IntAuth_{side}{n}: the chain starts from IntAuth_{side}{n - 1}'
            assert skp == k['sk_p' + side], f'IntAuth_{side}{n} uses SK_p{side} of round {n - 1}'
            assert prf(skp, prev + ap) == val, f'IntAuth_{side}{n}'
            ia[side] = {'prev': prev, 'a_p': ap, 'sk_p': skp, 'intauth': val}
            prev_ia[side] = val
        if spi_i is None:
            spi_i, spi_r = ia['i']['a_p'][0:8], ia['i']['a_p'][8:16]
            assert (spi_i, spi_r) == spis_of(open(f'{d}/list-sas-1.txt').read())
            check_keys(k, ni, nr, spi_i, spi_r, 'IKE_SA_INIT')
        # RFC 9370 2.2.2: SKEYSEED(n) = prf(SK_d(n-1), SK(n) | Ni | Nr), same Ni, Nr, SPIs
        skn = w.next('key exchange secret')
        assert w.next('additional key exchange secret') == b''
        assert w.next('nonces') == nonces
        kn = ike_keys(w)
        assert prf(k['sk_d'], skn + ni + nr) == kn['skeyseed'], f'SKEYSEED({n})'
        check_keys(kn, ni, nr, spi_i, spi_r, f'IKE_INTERMEDIATE {n}')
        rounds.append({'round': n, 'ke_method': KE_NAMES.get(kes[n], kes[n]), 'sk_n': skn, **kn,
                       'intauth_i': ia['i'], 'intauth_r': ia['r']})
        k = kn
    if spi_i is None:
        spi_i, spi_r = spis_of(open(f'{d}/list-sas-1.txt').read())
        check_keys(k, ni, nr, spi_i, spi_r, 'IKE_SA_INIT')
    # IKE_AUTH (RFC 7296 2.15 + RFC 9242 3.3.2):
    # octets = message | nonce | prf(SK_p, IDx') | IntAuth_iN | IntAuth_rN | IKE_AUTH message ID
    auth = {}
    for side, nonce in (('i', nr), ('r', ni)):
        idb, skp, octets = w.next("IDx'"), w.next('SK_p'), w.next("octets = message + nonce + prf(Sk_px, IDx') + IntAuth")
        psk, padded, a = w.next('secret'), w.next('prf(secret, keypad)'), w.next('AUTH = prf(prf(secret, keypad), octets)')
        assert skp == k['sk_p' + side]
        tail = nonce + prf(skp, idb) + prev_ia['i'] + prev_ia['r']
        msg_len = len(octets) - len(tail) - 4
        assert octets[msg_len:-4] == tail, f'AUTH octets ({side}): not message | nonce | prf(SK_p, ID) | IntAuth_i | IntAuth_r | MID'
        assert prf(psk, b'Key Pad for IKEv2') == padded and prf(padded, octets) == a, f'AUTH ({side})'
        auth['initiator' if side == 'i' else 'responder'] = {
            'real_message': octets[:msg_len], 'nonce_peer': nonce, 'id_body': idb, 'sk_p': skp,
            'intauth_i': prev_ia['i'], 'intauth_r': prev_ia['r'], 'mid': octets[-4:], 'octets': octets, 'auth': a}
    auth['psk'] = psk
    # child SA of IKE_AUTH (RFC 7296 2.17): KEYMAT = prf+(SK_d, Ni | Nr), i->r key | salt first
    seed = w.next('seed')
    assert seed == ni + nr
    ci, cr = w.next('encryption initiator key'), w.next('encryption responder key')
    assert prf_plus(k['sk_d'], seed, 72) == ci + cr, 'child KEYMAT'
    # child SA rekey with PFS + IKE_FOLLOWUP_KE (RFC 9370 2.2.4):
    # KEYMAT = prf+(SK_d, SK(0) | Ni | Nr | SK(1) | ... | SK(n))
    c_sk0, c_add, c_seed = w.next('key exchange secret'), w.next('additional key exchange secret'), w.next('seed')
    assert c_seed[:len(c_sk0)] == c_sk0 and c_seed[len(c_seed) - len(c_add):] == c_add
    c_n = c_seed[len(c_sk0):len(c_seed) - len(c_add)]
    c_ni, c_nr = c_n[:len(c_n) // 2], c_n[len(c_n) // 2:]
    rci, rcr = w.next('encryption initiator key'), w.next('encryption responder key')
    assert prf_plus(k['sk_d'], c_seed, 72) == rci + rcr, 'child rekey KEYMAT'
    # IKE SA rekey + IKE_FOLLOWUP_KE (RFC 9370 2.2.4): SKEYSEED = prf(SK_d(old), SK(0) | Ni | Nr | SK(1) | ... | SK(n))
    r_sk0, r_add, r_n = w.next('key exchange secret'), w.next('additional key exchange secret'), w.next('nonces')
    r_ni, r_nr = r_n[:len(r_n) // 2], r_n[len(r_n) // 2:]
    kr = ike_keys(w)
    assert prf(k['sk_d'], r_sk0 + r_ni + r_nr + r_add) == kr['skeyseed'], 'rekey SKEYSEED'
    r_spi_i, r_spi_r = spis_of(open(f'{d}/list-sas-2.txt').read())
    check_keys(kr, r_ni, r_nr, r_spi_i, r_spi_r, 'IKE rekey')

    def split_add(add):  # every additional method here is ML-KEM: 32-octet shared secrets
        assert len(add) == 32 * n_add
        return [add[i:i + 32] for i in range(0, len(add), 32)]
    v.update({
        'ike_sa_init': {'spi_i': spi_i, 'spi_r': spi_r, **init},
        'ike_intermediate': rounds,
        'ike_auth': auth,
        'child_ike_auth': {'sk_d': k['sk_d'], 'ni': ni, 'nr': nr, 'key_len': 36, 'keymat_i_to_r': ci, 'keymat_r_to_i': cr},
        'child_rekey_pfs': {'sk_d': k['sk_d'], 'ni': c_ni, 'nr': c_nr, 'sk0': c_sk0, 'sk_add': split_add(c_add),
                            'key_len': 36, 'keymat_i_to_r': rci, 'keymat_r_to_i': rcr},
        'ike_rekey': {'sk_d_old': k['sk_d'], 'spi_i': r_spi_i, 'spi_r': r_spi_r, 'ni': r_ni, 'nr': r_nr,
                      'sk0': r_sk0, 'sk_add': split_add(r_add), **kr},
    })
    return v


def enc(o):
    if isinstance(o, bytes):
        return o.hex()
    if isinstance(o, dict):
        return {k: enc(x) for k, x in o.items()}
    if isinstance(o, list):
        return [enc(x) for x in o]
    return o


def main():
    out = {'about': 'Key schedule of strongSwan 6.1 <-> 6.1 handshakes (initiator side), extracted from its '
                    'ike/chd level-4 key log by tests/kat/ike/extract_vectors.py; every relation was checked '
                    'with Python hmac at extraction. PSK is a test value. Ni/Nr are split at half of the logged '
                    'Ni | Nr (strongSwan uses 32-octet nonces).',
           'handshakes': [handshake(d) for d in sys.argv[1:]]}
    json.dump(enc(out), sys.stdout, indent=1)
    print()


main()
