#!/usr/bin/env python3
"""A peer KME given by host name ([[peer]] url = "https://localhost:PORT"): KME_A resolves the name
(from /etc/hosts; no DNS traffic), tries each address it gets (where localhost also gives ::1, the
KMEs listen on 127.0.0.1 only), checks KME_B's certificate names KME_B, and keys flow both ways.
A name that resolves to no listening address gives 503 naming the peer, and the slave gets nothing.
Usage: peer_hostname_test.py QKD_KME_BINARY"""
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from kmetest import Checks, DemoDir  # noqa: E402

BIN = sys.argv[1]
c = Checks()
d = tempfile.mkdtemp(prefix="qkd-kme-peer-hostname-")
subprocess.run([BIN, "demo", d, "--prepare-only", "--log-level", "warn"], check=True, stdout=subprocess.DEVNULL)
print("localhost resolves to:", sorted({a[4][0] for a in socket.getaddrinfo("localhost", 443, type=socket.SOCK_STREAM)}))


def cfg(k):
    return os.path.join(d, f"kme_{k}.toml")


def edit(k, pattern, repl):
    text, n = re.subn(pattern, repl, open(cfg(k)).read())
    assert n == 1, f"{pattern!r} not found in {cfg(k)}"
    open(cfg(k), "w").write(text)


# Both directions by name; no stock of prefetched keys, so every Get key asks the peer right away.
edit("a", r'(?m)^url = "https://127\.0\.0\.1:(\d+)"$', r'url = "https://localhost:\1"')
edit("b", r'(?m)^url = "https://127\.0\.0\.1:(\d+)"$', r'url = "https://localhost:\1"')
for k in ("a", "b"):
    edit(k, r"(?m)^prefetch_keys = .*$", "prefetch_keys = 0")


demo = DemoDir(d)
call = demo.call


def start():
    procs = {k: subprocess.Popen([BIN, "serve", "-c", cfg(k)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for k in ("a", "b")}
    demo.wait_up()
    return procs


def stop(procs):
    for p in procs.values():
        p.send_signal(signal.SIGTERM)
        p.wait()


procs = start()
try:
    for master, mk, slave, sk in (("SAE_A", "a", "SAE_B", "b"), ("SAE_B", "b", "SAE_A", "a")):
        st, body = call(master, mk, "POST", f"/api/v1/keys/{slave}/enc_keys", {"number": 2})
        c.true(f"{master} -> {slave} by host name: Get key answers 200", st == 200, f"got {st}: {body}")
        if st == 200:
            ids = {"key_IDs": [{"key_ID": k["key_ID"]} for k in body["keys"]]}
            st2, got = call(slave, sk, "POST", f"/api/v1/keys/{master}/dec_keys", ids)
            c.true(f"{master} -> {slave} by host name: Get key with key IDs answers 200", st2 == 200, f"got {st2}: {got}")
            c.eq(f"{master} -> {slave} by host name: same keys", [k["key"] for k in (got or {}).get("keys", [])],
                 [k["key"] for k in body["keys"]])
finally:
    stop(procs)

# KME_A's peer by a name that resolves (localhost) to addresses where nothing listens.
free = socket.socket()
free.bind(("127.0.0.1", 0))
dead_port = free.getsockname()[1]
free.close()
edit("a", r'(?m)^url = "https://localhost:(\d+)"$', f'url = "https://localhost:{dead_port}"')
p = subprocess.Popen([BIN, "serve", "-c", cfg("a")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    demo.wait_up(("a",))
    st, body = call("SAE_A", "a", "POST", "/api/v1/keys/SAE_B/enc_keys", {"number": 1})
    c.true("peer name with nothing listening: Get key answers 503", st == 503, f"got {st}: {body}")
    msg = (body or {}).get("message", "")
    print("answer with nothing listening at the peer name:", msg)
    c.true("peer name with nothing listening: the message names KME_B and the URL", "KME_B" in msg and f"localhost:{dead_port}" in msg, msg)
finally:
    p.send_signal(signal.SIGTERM)
    p.wait()
sys.exit(c.done())
