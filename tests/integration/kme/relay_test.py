#!/usr/bin/env python3
"""Trusted-node relay (issue 17, item 1) with real `qkd-kme serve` processes over mutual TLS on
loopback: A - R - C and A - R1 - R2 - C from `qkd-kme demo --relay --prepare-only`. Keys equal at
both ends, both directions, multicast along the path, per-hop counters in the metrics, a relay or
the last KME killed (kill -9) mid-load gives 503 naming the hop, after restarts no key material is
ever handed out twice, bad routes are refused at start naming the file and key; and the
`qkd-kme demo --relay` a new user starts."""
import http.client
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from kmetest import Checks, Demo  # noqa: E402

BIN = sys.argv[1]
c = Checks()
seen_keys = {}  # key (Base64) -> key_ID: a value seen under two IDs would be reused material


def note(keys, what):
    for k in keys:
        prev = seen_keys.setdefault(k["key"], k["key_ID"])
        if prev != k["key_ID"]:
            c.true(f"{what}: key material never handed out twice", False, f"{k['key_ID']} repeats {prev}")


class Chain:
    def __init__(self, relays):
        self.d = tempfile.mkdtemp(prefix=f"qkd-kme-relay{relays}-")
        out = subprocess.run([BIN, "demo", self.d, "--relay", "--relays", str(relays), "--prepare-only", "--log-level", "warn"],
                             check=True, capture_output=True, text=True).stdout.split()
        self.files = out
        self.ids = [re.search(r'(?m)^id = "(\w+)"', open(f).read()).group(1) for f in out]  # KME IDs in chain order
        self.saes = ["SAE_" + k[4:] for k in self.ids]
        self.port = {k: int(re.search(r'(?m)^listen = "127\.0\.0\.1:(\d+)"', open(f).read()).group(1)) for k, f in zip(self.ids, out)}
        self.mport = {k: int(re.search(r'(?m)^metrics_listen = "127\.0\.0\.1:(\d+)"', open(f).read()).group(1)) for k, f in zip(self.ids, out)}
        self.procs = {}

    def start(self, kme):
        f = self.files[self.ids.index(kme)]
        log = open(f + ".log", "a")
        self.procs[kme] = subprocess.Popen([BIN, "serve", "-c", f], stdout=log, stderr=subprocess.STDOUT)

    def start_all(self):
        for k in self.ids:
            self.start(k)
        for k, s in zip(self.ids, self.saes):
            self.wait_up(k, s)

    def wait_up(self, kme, sae):
        other = self.saes[-1] if sae != self.saes[-1] else self.saes[0]
        deadline = time.time() + 30
        while True:
            try:
                if self.call(sae, "GET", f"/api/v1/keys/{other}/status")[0] == 200:
                    return
            except OSError:
                pass
            if self.procs[kme].poll() is not None or time.time() > deadline:
                raise RuntimeError(f"{kme} did not start: " + open(self.files[self.ids.index(kme)] + ".log").read()[-3000:])
            time.sleep(0.05)

    def call(self, sae, method, path, body=None, timeout=15):
        kme = self.ids[self.saes.index(sae)]
        ctx = ssl.create_default_context(cafile=os.path.join(self.d, "pki/ca.pem"))
        ctx.load_cert_chain(os.path.join(self.d, f"pki/{sae.lower()}.pem"), os.path.join(self.d, f"pki/{sae.lower()}.key"))
        h = http.client.HTTPSConnection("127.0.0.1", self.port[kme], context=ctx, timeout=timeout)
        h.request(method, path, body=None if body is None else json.dumps(body), headers={"Content-Type": "application/json"})
        r = h.getresponse()
        out = r.status, json.loads(r.read() or b"null")
        h.close()
        return out

    def metric(self, kme, name, direction=None):
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.mport[kme]}/metrics", timeout=5).read().decode()
        lab = f',direction="{direction}"' if direction else ""
        m = re.search(rf'(?m)^{name}{{kme="{kme}"{lab}}} (\d+)', text)
        return int(m.group(1)) if m else None

    def kill(self, kme, sig=signal.SIGKILL):
        p = self.procs.pop(kme)
        p.send_signal(sig)
        return p.wait(timeout=20)

    def stop_all(self):
        for k in list(self.procs):
            c.eq(f"{k} exits cleanly on SIGTERM", self.kill(k, signal.SIGTERM), 0)


def through(ch, master, slave, number=1, extra=None, what=""):
    body = {"number": number}
    body.update(extra or {})
    st, m = ch.call(master, "POST", f"/api/v1/keys/{slave}/enc_keys", body)
    if st != 200:
        c.true(f"{what}: Get key", False, f"{st} {m}")
        return None
    note(m["keys"], what)
    st, s = ch.call(slave, "POST", f"/api/v1/keys/{master}/dec_keys", {"key_IDs": [{"key_ID": k["key_ID"]} for k in m["keys"]]})
    c.eq(f"{what}: the slave gets the same keys", (st, [k["key"] for k in (s or {}).get("keys", [])]), (200, [k["key"] for k in m["keys"]]))
    return m["keys"]


# ---- one relay: A - R - C ----------------------------------------------------------------------------
ch = Chain(1)
c.eq("chain", ch.ids, ["KME_A", "KME_R", "KME_C"])
ch.start_all()
try:
    a_before = ch.metric("KME_A", "qkd_kme_stream_offset_bytes", "KME_A->KME_R")
    r_before = ch.metric("KME_R", "qkd_kme_stream_offset_bytes", "KME_R->KME_C")
    through(ch, "SAE_A", "SAE_C", 4, what="A -> C through R")
    c.eq("KME_R relayed 4 keys", ch.metric("KME_R", "qkd_kme_keys_relayed_total"), 4)
    c.eq("hop A->R consumed 4 keys", ch.metric("KME_A", "qkd_kme_stream_offset_bytes", "KME_A->KME_R") - a_before, 128)
    c.eq("hop R->C consumed 4 keys", ch.metric("KME_R", "qkd_kme_stream_offset_bytes", "KME_R->KME_C") - r_before, 128)
    st, body = ch.call("SAE_A", "GET", "/api/v1/keys/SAE_C/status")
    c.eq("Get status names the far KME", (st, body.get("target_KME_ID")), (200, "KME_C"))
    through(ch, "SAE_C", "SAE_A", 2, what="C -> A through R")
    through(ch, "SAE_A", "SAE_C", 1, {"additional_slave_SAE_IDs": ["SAE_R"]}, what="multicast C and R")
    ks = through(ch, "SAE_A", "SAE_C", 1, what="GET form")
    if ks:
        st, _ = ch.call("SAE_C", "GET", f"/api/v1/keys/SAE_A/dec_keys?key_ID={ks[0]['key_ID']}")
        c.eq("a relayed key is delivered once", st, 400)

    # Load while the last KME and then the relay are killed: 503 naming the hop, never a wrong key.
    stop, results, lock = threading.Event(), [], threading.Lock()

    def load():
        while not stop.is_set():
            try:
                st, m = ch.call("SAE_A", "POST", "/api/v1/keys/SAE_C/enc_keys", {"number": 2}, timeout=20)
            except OSError as e:
                st, m = -1, str(e)
            with lock:
                results.append((st, m))
            if st != 200:
                time.sleep(0.05)

    t = threading.Thread(target=load)
    t.start()
    time.sleep(1.0)
    ch.kill("KME_C")
    time.sleep(1.5)
    with lock:
        n_c = len(results)
    ch.kill("KME_R")
    time.sleep(1.5)
    stop.set()
    t.join()
    ok = [m for st, m in results if st == 200]
    failed_c = [m for st, m in results[:n_c] if st == 503 and "KME_R->KME_C" in m.get("message", "")]
    failed_r = [m for st, m in results[n_c:] if st == 503 and "KME_R" in m.get("message", "")]
    other = [(st, m) for st, m in results if st not in (200, 503)]
    c.true("keys served before the kills", len(ok) > 0, str(len(ok)))
    c.true("KME_C down: 503 naming hop KME_R->KME_C", len(failed_c) > 0, str(results[-3:]))
    c.true("KME_R down: 503 naming KME_R", len(failed_r) > 0, str(results[-3:]))
    c.eq("no other answers", other[:2], [])
    for m in ok:
        note(m["keys"], "under load")
    ch.start("KME_R")
    ch.start("KME_C")
    ch.wait_up("KME_R", "SAE_R")
    ch.wait_up("KME_C", "SAE_C")
    # Keys handed out before the kills are still with KME_C (durable), as on a direct link.
    if ok:
        k = ok[0]["keys"][0]
        st, s = ch.call("SAE_C", "GET", f"/api/v1/keys/SAE_A/dec_keys?key_ID={k['key_ID']}")
        c.eq("a key delivered before the kill is fetched after KME_C's restart", (st, s.get("keys", [{}])[0].get("key")), (200, k["key"]))
    for i in range(3):
        through(ch, "SAE_A", "SAE_C", 4, what=f"after restarts #{i}")
finally:
    ch.stop_all()

# ---- two relays: A - R1 - R2 - C ---------------------------------------------------------------------
ch2 = Chain(2)
c.eq("chain of two relays", ch2.ids, ["KME_A", "KME_R1", "KME_R2", "KME_C"])
ch2.start_all()
try:
    through(ch2, "SAE_A", "SAE_C", 3, what="A -> C through R1, R2")
    through(ch2, "SAE_C", "SAE_A", 1, what="C -> A through R2, R1")
    through(ch2, "SAE_A", "SAE_C", 1, {"additional_slave_SAE_IDs": ["SAE_R2"]}, what="multicast C and R2")
    c.eq("KME_R1 relayed", ch2.metric("KME_R1", "qkd_kme_keys_relayed_total"), 5)
    c.eq("KME_R2 relayed", ch2.metric("KME_R2", "qkd_kme_keys_relayed_total"), 5)
finally:
    ch2.stop_all()

# ---- bad routes refused at start, naming the file and the key --------------------------------------------
fa = ch.files[0]
text = open(fa).read()
for what, old, new, key in (("unknown next hop", 'via = "KME_R"', 'via = "KME_X"', "route[0].via"),
                            ("route to itself", '[[route]]\nkme_id = "KME_C"', '[[route]]\nkme_id = "KME_A"', "route[0].kme_id")):
    c.true(f"{what}: the demo config has the route", old in text)
    open(fa, "w").write(text.replace(old, new, 1))
    for cmd in ("check-config", "serve"):
        r = subprocess.run([BIN, cmd, "-c", fa], capture_output=True, text=True, timeout=30)
        c.true(f"{what}: {cmd} refuses naming file and key", r.returncode != 0 and f"{fa}: key '{key}'" in r.stderr, r.stderr[-400:])
open(fa, "w").write(text)

# ---- the demo a new user starts ----------------------------------------------------------------------------
demo = Demo(BIN, "--relay")
try:
    a, cc = demo.client("SAE_A"), demo.client("SAE_C")
    st, m, _ = a.call("POST", "/api/v1/keys/SAE_C/enc_keys", {"number": 1})
    c.eq("demo --relay: Get key at SAE_A for SAE_C", st, 200)
    if st == 200:
        st, s, _ = cc.call("GET", f"/api/v1/keys/SAE_A/dec_keys?key_ID={m['keys'][0]['key_ID']}")
        c.eq("demo --relay: the same key at SAE_C", (st, s["keys"][0]["key"]), (200, m["keys"][0]["key"]))
    c.eq("demo.json lists the chain", [k["kme_id"] for k in demo.info["kmes"]], ["KME_A", "KME_R", "KME_C"])
finally:
    c.eq("demo --relay exits cleanly on SIGTERM", demo.stop(), 0)
sys.exit(c.done())
