#!/usr/bin/env python3
"""Lenient request forms (issue 17, item 3) over real mTLS: Get key as GET with a JSON body or as
POST with query parameters is answered, the same parameter in both places with different values is
a 400 naming both, and `[kme] strict = true` keeps the standard's one form per method."""
import base64
import http.client
import json
import os
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from kmetest import Checks, Demo, KmeAConfig  # noqa: E402

BIN = sys.argv[1]
c = Checks()

# ---- default (lenient): two KMEs from the demo ---------------------------------------------------
demo = Demo(BIN)
try:
    a = demo.client("SAE_A")
    b = demo.client("SAE_B")
    st, body, _ = a.call("GET", "/api/v1/keys/SAE_B/enc_keys", {"number": 2, "size": 512})
    c.eq("GET enc_keys with a JSON body", (st, len(body.get("keys", []))), (200, 2))
    c.eq("... of the size in the body", len(base64.b64decode(body["keys"][0]["key"])), 64)
    got_get = body["keys"]
    st, body, _ = a.call("POST", "/api/v1/keys/SAE_B/enc_keys?number=3&size=128")
    c.eq("POST enc_keys with query parameters and no body", (st, len(body.get("keys", []))), (200, 3))
    c.eq("... of the size in the query", len(base64.b64decode(body["keys"][0]["key"])), 16)
    got_post = body["keys"]
    st, body, _ = a.call("POST", "/api/v1/keys/SAE_B/enc_keys?number=2", {"number": 2, "size": 256})
    c.eq("the same value in both places", (st, len(body.get("keys", []))), (200, 2))
    st, body, _ = a.call("POST", "/api/v1/keys/SAE_B/enc_keys?number=2", {"size": 256, "additional_slave_SAE_IDs": ["SAE_C"]})
    c.eq("query number with a body of other fields (multicast)", (st, len(body.get("keys", []))), (200, 2))
    st, body, _ = a.call("POST", "/api/v1/keys/SAE_B/enc_keys?number=2", {"number": 3})
    msg = body.get("message", "") if isinstance(body, dict) else ""
    c.true("different values in query and body: 400 naming both", st == 400 and "'number'" in msg and "2 in the query" in msg
           and "3 in the JSON body" in msg, f"{st} {body}")
    st, body, _ = a.call("GET", "/api/v1/keys/SAE_B/enc_keys?size=256", {"size": 512})
    msg = body.get("message", "") if isinstance(body, dict) else ""
    c.true("GET: different sizes: 400 naming both", st == 400 and "256 in the query" in msg and "512 in the JSON body" in msg, str(body))
    st, body, _ = a.call("GET", "/api/v1/keys/SAE_B/enc_keys", "{")
    c.true("a GET body is parsed like a POST body", st == 400 and "not valid JSON" in body.get("message", ""), str(body))

    # Get key with key IDs, both ways round, and the keys are the master's.
    st, body, _ = b.call("GET", "/api/v1/keys/SAE_A/dec_keys", {"key_IDs": [{"key_ID": k["key_ID"]} for k in got_get]})
    c.eq("GET dec_keys with a JSON body", (st, [k["key"] for k in body.get("keys", [])]), (200, [k["key"] for k in got_get]))
    st, body, _ = b.call("POST", f"/api/v1/keys/SAE_A/dec_keys?key_ID={got_post[0]['key_ID']}")
    c.eq("POST dec_keys with a key_ID query parameter", (st, body.get("keys", [{}])[0].get("key")), (200, got_post[0]["key"]))
    st, body, _ = b.call("POST", f"/api/v1/keys/SAE_A/dec_keys?key_ID={got_post[1]['key_ID']}",
                         {"key_IDs": [{"key_ID": got_post[1]["key_ID"]}]})
    c.eq("the same key ID in both places", (st, body.get("keys", [{}])[0].get("key")), (200, got_post[1]["key"]))
    st, body, _ = b.call("POST", f"/api/v1/keys/SAE_A/dec_keys?key_ID={got_post[2]['key_ID']}",
                         {"key_IDs": [{"key_ID": got_post[1]["key_ID"]}]})
    msg = body.get("message", "") if isinstance(body, dict) else ""
    c.true("different key IDs in query and body: 400 naming both", st == 400 and got_post[2]["key_ID"] in msg
           and got_post[1]["key_ID"] in msg and "in the query" in msg and "in the JSON body" in msg, str(body))
    st, body, _ = b.call("POST", f"/api/v1/keys/SAE_A/dec_keys?key_ID={got_post[2]['key_ID']}")
    c.eq("... and the refused request consumed nothing", st, 200)
    st, body, _ = b.call("POST", "/api/v1/keys/SAE_A/dec_keys?key_ID=x&key_ID=y")
    c.true("two key_ID query parameters: 400", st == 400 and "exactly one" in body.get("message", ""), str(body))
finally:
    rc = demo.stop()
c.eq("demo exit code after SIGTERM", rc, 0)

# ---- strict = true: a KME_A of its own (local pair SAE_A -> SAE_C needs no peer) -----------------
kme = KmeAConfig(BIN, "qkd-kme-forms-")
kme.write("strict = true")
log = open(os.path.join(kme.dir, "kme_a.log"), "w+")
proc = subprocess.Popen([BIN, "serve", "-c", kme.path], stdout=log, stderr=subprocess.STDOUT)
try:
    ctx = ssl.create_default_context(cafile=os.path.join(kme.dir, "pki/ca.pem"))
    ctx.load_cert_chain(os.path.join(kme.dir, "pki/sae_a.pem"), os.path.join(kme.dir, "pki/sae_a.key"))

    def call(method, path, body=None):
        conn = http.client.HTTPSConnection("127.0.0.1", kme.port, context=ctx, timeout=10)
        conn.request(method, path, body=None if body is None else json.dumps(body), headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        out = r.status, json.loads(r.read() or b"null")
        conn.close()
        return out

    deadline = time.time() + 30
    while True:
        try:
            if call("GET", "/api/v1/keys/SAE_C/status")[0] == 200:
                break
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            log.seek(0)
            raise RuntimeError("KME_A did not start: " + log.read())
        time.sleep(0.05)
    st, body = call("GET", "/api/v1/keys/SAE_C/enc_keys", {"number": 1})
    c.true("strict: GET with a body refused", st == 400 and "carries no body" in body.get("message", ""), str(body))
    st, body = call("POST", "/api/v1/keys/SAE_C/enc_keys?number=1")
    c.true("strict: POST with a query refused", st == 400 and "not the query" in body.get("message", ""), str(body))
    st, body = call("POST", "/api/v1/keys/SAE_C/enc_keys", {"number": 1})
    c.eq("strict: the POST form", st, 200)
    st, body = call("GET", "/api/v1/keys/SAE_C/enc_keys?number=1")
    c.eq("strict: the GET form", st, 200)
finally:
    proc.terminate()
    rc = proc.wait(timeout=20)
c.eq("strict KME exits cleanly on SIGTERM", rc, 0)
sys.exit(c.done())
