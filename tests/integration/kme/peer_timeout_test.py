#!/usr/bin/env python3
"""A peer KME that stops answering (SIGSTOP: connections are accepted by the kernel, nothing is
read): every Get key that needs it is answered 503 within sync_timeout, counted from when the
request was made (waiting for a free connection included), and its material is burned. Once the
peer runs again, keys flow and the slave gets the same bytes.
Usage: peer_timeout_test.py QKD_KME_BINARY"""
import concurrent.futures
import http.client
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from kmetest import Checks, DemoDir  # noqa: E402

BIN = sys.argv[1]
SYNC_TIMEOUT = 1.0  # seconds, [[peer]] sync_timeout of KME_A
SLACK = 0.8         # answering a 503 once the time is up
c = Checks()
d = tempfile.mkdtemp(prefix="qkd-kme-peer-timeout-")
subprocess.run([BIN, "demo", d, "--prepare-only", "--log-level", "warn"], check=True, stdout=subprocess.DEVNULL)


def edit(name, pattern, repl):
    p = os.path.join(d, name)
    text, n = re.subn(pattern, repl, open(p).read())
    assert n == 1, f"{pattern!r} not found in {name}"
    open(p, "w").write(text)


# No stock of keys reserved ahead (prefetch_keys = 0): every Get key needs the peer.
edit("kme_a.toml", r"(?m)^sync_timeout = .*$", f"sync_timeout = {SYNC_TIMEOUT:g}")
edit("kme_a.toml", r"(?m)^prefetch_keys = .*$", "prefetch_keys = 0")
port = {}
metrics = {}
for k in ("a", "b"):
    text = open(os.path.join(d, f"kme_{k}.toml")).read()
    port[k] = int(re.search(r'(?m)^listen = "127\.0\.0\.1:(\d+)"', text).group(1))
    metrics[k] = int(re.search(r'(?m)^metrics_listen = "127\.0\.0\.1:(\d+)"', text).group(1))


def conn(sae, k):
    ctx = ssl.create_default_context(cafile=os.path.join(d, "pki/ca.pem"))
    ctx.load_cert_chain(os.path.join(d, f"pki/{sae.lower()}.pem"), os.path.join(d, f"pki/{sae.lower()}.key"))
    return http.client.HTTPSConnection("127.0.0.1", port[k], context=ctx, timeout=15)


def call(h, method, path, body=None):
    h.request(method, path, body=None if body is None else json.dumps(body), headers={"Content-Type": "application/json"})
    r = h.getresponse()
    return r.status, json.loads(r.read() or b"null")


def enc():
    return call(conn("SAE_A", "a"), "POST", "/api/v1/keys/SAE_B/enc_keys", {"number": 1})


def counter(k, name):
    h = http.client.HTTPConnection("127.0.0.1", metrics[k], timeout=5)
    h.request("GET", "/metrics")
    m = re.search(r"(?m)^" + name + r"\{[^}]*\} (\S+)$", h.getresponse().read().decode())
    return int(float(m.group(1)))


procs = {k: subprocess.Popen([BIN, "serve", "-c", os.path.join(d, f"kme_{k}.toml")], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL) for k in ("a", "b")}
try:
    # Both KMEs must be listening before KME_B is stopped: KME_A may answer (503, peer refused)
    # before KME_B has bound its port, and a KME_B stopped before it listens is a refused peer,
    # not a stalled one.
    DemoDir(d).wait_up()
    st, body = enc()
    c.eq("peer up: Get key", st, 200)

    procs["b"].send_signal(signal.SIGSTOP)
    burned0 = counter("a", "qkd_kme_keys_burned_total")

    def timed(delay):
        time.sleep(delay)
        t0 = time.monotonic()
        st, body = enc()
        return st, body, time.monotonic() - t0

    # Twelve requests over 0.6 s: the first ones occupy every connection to the stalled peer, the
    # later ones wait for a free one. Each gets its answer within sync_timeout of its own start.
    with concurrent.futures.ThreadPoolExecutor(12) as ex:
        results = list(ex.map(timed, [0.05 * i for i in range(12)]))
    for i, (st, body, took) in enumerate(results):
        c.eq(f"stalled peer, request {i}: status", st, 503)
        msg = (body or {}).get("message", "")
        c.true(f"stalled peer, request {i}: the message names KME_B and sync_timeout", "KME_B" in msg and "sync_timeout" in msg, msg)
        c.true(f"stalled peer, request {i}: answered within sync_timeout", took <= SYNC_TIMEOUT + SLACK,
               f"took {took:.2f} s, sync_timeout {SYNC_TIMEOUT} s")
    print("answer times with the peer stalled:", " ".join(f"{r[2]:.2f}" for r in results), "s")
    c.true("burned material counted", counter("a", "qkd_kme_keys_burned_total") - burned0 >= 12)

    procs["b"].send_signal(signal.SIGCONT)
    time.sleep(0.2)
    st, body = enc()
    c.eq("peer back: Get key", st, 200)
    if st == 200:
        kid = body["keys"][0]["key_ID"]
        st2, got = call(conn("SAE_B", "b"), "GET", f"/api/v1/keys/SAE_A/dec_keys?key_ID={kid}")
        c.eq("peer back: the slave gets it", st2, 200)
        c.eq("peer back: same key", got["keys"][0]["key"] if st2 == 200 else None, body["keys"][0]["key"])
finally:
    for p in procs.values():
        try:
            p.send_signal(signal.SIGCONT)
        except ProcessLookupError:
            pass
        p.kill()
        p.wait()
sys.exit(c.done())
