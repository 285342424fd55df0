#!/usr/bin/env python3
"""Splits a qkdgated perf profile (perf script output with call chains) into cost buckets.

usage: perf script -i perf.data -F ip,sym | perf_buckets.py [CPU_MS_PER_SA]
Each sample is put in the first bucket (in the order below) one of whose patterns names a frame
of its call chain, so a bucket is inclusive of everything called beneath that frame. With
CPU_MS_PER_SA (from the benchmark run) each bucket is also given in ms per SA.
"""
import collections
import re
import sys

# (bucket, regex on a frame's symbol); first match in this order wins
BUCKETS = [
    ("ECDH: peer key full check in EVP_PKEY_derive_set_peer (n*Q)", r"EVP_PKEY_derive_set_peer"),
    ("ECDH: peer key quick check", r"EVP_PKEY_public_check_quick"),
    ("ECDH: peer key import (EVP_PKEY_fromdata)", r"EVP_PKEY_fromdata"),
    ("ECDH: shared secret (EVP_PKEY_derive)", r"^EVP_PKEY_derive$|ECDH_compute_key"),
    ("KE: own key pair (EVP_PKEY_generate)", r"EVP_PKEY_generate|KeyExchange::generate"),
    ("ML-KEM", r"(?i)mlkem|ml_kem"),
    ("KE: other", r"KeyExchange::derive"),
    ("PRF object creation (EVP_MAC/EVP_MD fetch)", r"crypto::Prf::Prf\b"),
    ("PRF, prf+ (SKEYSEED, keys, AUTH)", r"crypto::Prf::|keymat::"),
    ("AES-GCM (SK payloads)", r"(?i)aead|EVP_(En|De)crypt|EVP_Cipher"),
    ("data plane: install SA", r"install_sa"),
    ("data plane: policies", r"install_polic"),
    ("data plane: other", r"qkd::dp::"),
    ("logging (spdlog)", r"spdlog"),
    ("IKE summary for trace logs", r"ike_summary"),
    ("UDP send", r"send_datagram|sendto|sendmsg"),
    ("control socket", r"(?i)control"),
    ("timers", r"next_deadline|arm_timer|on_timer"),
    ("engine: other (parse, encode, SA state)", r"qkd::ike::"),
    ("daemon: other", r"qkd::daemon::"),
    ("UDP receive, event loop", r"recvfrom|recvmsg|epoll|scheduler"),
]


def samples(stream):
    cur = []
    for line in stream:
        line = line.rstrip("\n")
        if not line.strip():
            if cur:
                yield cur
            cur = []
            continue
        parts = line.strip().split(None, 1)
        cur.append(parts[1] if len(parts) > 1 else "")
    if cur:
        yield cur


def main():
    ms = float(sys.argv[1]) if len(sys.argv) > 1 else None
    rules = [(b, re.compile(p)) for b, p in BUCKETS]
    count = collections.Counter()
    total = 0
    for frames in samples(sys.stdin):
        total += 1
        for b, rx in rules:
            if any(rx.search(f) for f in frames):
                count[b] += 1
                break
        else:
            count["other (kernel, libc outside the above)"] += 1
    if not total:
        sys.exit("no samples")
    print("%-62s %8s %7s%s" % ("bucket (inclusive of callees)", "samples", "share", "  ms/SA" if ms else ""))
    for b, n in count.most_common():
        print("%-62s %8d %6.1f%%%s" % (b, n, 100 * n / total, "  %.3f" % (ms * n / total) if ms else ""))
    print("%-62s %8d" % ("total", total))


main()
