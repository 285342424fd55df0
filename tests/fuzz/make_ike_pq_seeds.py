#!/usr/bin/env python3
"""Writes the post-quantum seeds of the ike_message fuzz corpus (issue 15): IKE_SA_INIT with
ADDKE1..7 transforms (NONE included) and ML-KEM KE payloads, answers keeping proposal number 2,
IKE_INTERMEDIATE (43) and IKE_FOLLOWUP_KE (44) with KE sizes up to 1568 octets, STATE_NOT_FOUND.
Encrypted bodies are laid out so that the harness, which parses an SK body as if it were
plaintext, reaches the inner decoders: IV(8) | inner chain, the last payload covering the ICV(16).
Usage: make_ike_pq_seeds.py OUTDIR"""
import struct, sys, os

SPI_I, SPI_R = bytes(range(1, 9)), bytes(range(9, 17))
SA, KE, IDI, AUTH, NONCE, NOTIFY, SK = 33, 34, 35, 39, 40, 41, 46

def header(first, exch, flags, mid, length, spi_r=SPI_R):
    return SPI_I + spi_r + bytes([first, 0x20, exch, flags]) + struct.pack(">II", mid, length)

def chain(payloads, tail_pad=0):
    out = b""
    for i, (t, body) in enumerate(payloads):
        nxt = payloads[i + 1][0] if i + 1 < len(payloads) else 0
        out += bytes([nxt, 0]) + struct.pack(">H", 4 + len(body)) + body
    return out

def transform(ttype, tid, last, keylen=None):
    attr = struct.pack(">HH", 0x800E, keylen) if keylen else b""
    return bytes([0 if last else 3, 0]) + struct.pack(">H", 8 + len(attr)) + bytes([ttype, 0]) + struct.pack(">H", tid) + attr

def proposal(num, proto, transforms, last, spi=b""):
    ts = b"".join(transform(t, i, j == len(transforms) - 1, k) for j, (t, i, k) in enumerate(transforms))
    body = bytes([num, proto, len(spi), len(transforms)]) + spi + ts
    return bytes([0 if last else 2, 0]) + struct.pack(">H", 4 + len(body)) + body

def sa(props):
    return b"".join(proposal(n, proto, ts, i == len(props) - 1, spi) for i, (n, proto, ts, spi) in enumerate(props))

def ke(method, data):
    return struct.pack(">HH", method, 0) + data

def notify(ntype, data=b"", proto=0, spi=b""):
    return bytes([proto, len(spi)]) + struct.pack(">H", ntype) + spi + data

def plain(exch, flags, payloads, spi_r=b"\0" * 8, mid=0):
    body = chain(payloads)
    return header(payloads[0][0], exch, flags, mid, 28 + len(body), spi_r) + body

def encrypted(exch, flags, mid, payloads):
    # The last inner payload absorbs the 16-octet ICV so the chain parses to the end.
    *rest, (t, last) = payloads
    inner = chain(rest + [(t, last + b"\0" * 16)])
    sk = bytes(8) + inner
    skp = bytes([payloads[0][0], 0]) + struct.pack(">H", 4 + len(sk)) + sk
    return header(SK, exch, flags, mid, 28 + len(skp)) + skp

ENCR = (1, 20, 256); PRF = (2, 7, None)
def kt(t, i): return (t, i, None)
mlkem768_ek = bytes(1152) + bytes(range(32))          # all coefficients 0: passes FIPS 203 7.2
bad_ek = b"\xff\x0f" + bytes(1150) + bytes(range(32))  # first coefficient 4095 >= q
ecp521 = bytes(131) + b"\x01"                           # off the curve
nonce = bytes(range(32))
I, R = 0x08, 0x20

seeds = {
    # HDR, SAi1{ecp521-ke1_mlkem768-ke1_none, x25519-ke1..ke7}, KEi(21), Ni, N(INTERMEDIATE_EXCHANGE_SUPPORTED)
    "pq_init_hybrid": plain(34, I, [
        (SA, sa([(1, 1, [ENCR, PRF, kt(4, 21), kt(6, 36), kt(6, 0)], b""),
                 (2, 1, [ENCR, PRF, kt(4, 31)] + [kt(5 + n, 34 + n % 4) for n in range(1, 8)] + [kt(12, 0), kt(13, 1)], b"")])),
        (KE, ke(21, ecp521)), (NONCE, nonce), (NOTIFY, notify(16438))]),
    # ML-KEM-768 alone in the KE slot, a well-formed and a bad encapsulation key
    "pq_init_mlkem768": plain(34, I, [(SA, sa([(1, 1, [ENCR, PRF, kt(4, 36)], b"")])), (KE, ke(36, mlkem768_ek)), (NONCE, nonce)]),
    "pq_init_mlkem768_badek": plain(34, I, [(SA, sa([(1, 1, [ENCR, PRF, kt(4, 36)], b"")])), (KE, ke(36, bad_ek)), (NONCE, nonce)]),
    "pq_init_mlkem1024": plain(34, I, [(SA, sa([(1, 1, [ENCR, PRF, kt(4, 37), kt(6, 0)], b"")])),
                                       (KE, ke(37, bytes(1536) + bytes(32))), (NONCE, nonce)]),
    # <-- HDR, SAr1{#2 with ADDKE1=36}, KEr(21), Nr, N(16438)
    "pq_init_answer_2": plain(34, R, [(SA, sa([(2, 1, [ENCR, PRF, kt(4, 21), kt(6, 36)], b"")])), (KE, ke(21, ecp521)),
                                      (NONCE, nonce), (NOTIFY, notify(16438))], spi_r=SPI_R),
    # HDR, SK{KEi(ML-KEM-768)} -->   <-- HDR, SK{KEr(1088)}
    "pq_intermediate_req": encrypted(43, I, 1, [(KE, ke(36, mlkem768_ek))]),
    "pq_intermediate_resp": encrypted(43, R, 1, [(KE, ke(36, bytes(1088)))]),
    "pq_intermediate_empty": encrypted(43, I, 1, [(NOTIFY, notify(16430))]),
    # HDR, SK{KEi(n), N(ADDITIONAL_KEY_EXCHANGE)} -->  <-- N(STATE_NOT_FOUND)
    "pq_followup_req": encrypted(44, I, 3, [(KE, ke(37, bytes(1568))), (NOTIFY, notify(16441, b"link"))]),
    "pq_followup_state_not_found": encrypted(44, R, 3, [(NOTIFY, notify(47))]),
    # CREATE_CHILD_SA response announcing IKE_FOLLOWUP_KE, ESP with PFS + ADDKE1
    "pq_create_child_resp": encrypted(36, R, 2, [
        (SA, sa([(2, 3, [ENCR, kt(4, 21), kt(6, 36), kt(5, 0)], b"\x01\x02\x03\x04")])), (NONCE, nonce),
        (KE, ke(21, ecp521)), (NOTIFY, notify(16441, b"link"))]),
}
os.makedirs(sys.argv[1], exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(sys.argv[1], name), "wb") as f:
        f.write(data)
    print(name, len(data))
