#!/usr/bin/env python3
"""ETSI GS QKD 014 API of qkd-kme over real mutual TLS: every method and form, every error case."""
import base64
import ssl
import sys
import urllib.request

sys.path.insert(0, __import__("os").path.dirname(__file__))
from kmetest import Checks, Demo  # noqa: E402

c = Checks()
demo = Demo(sys.argv[1])
try:
    a = demo.client("SAE_A")
    b = demo.client("SAE_B")
    sc = demo.client("SAE_C")

    # Get status (5.2)
    st, body, _ = a.call("GET", "/api/v1/keys/SAE_B/status")
    c.eq("status code", st, 200)
    for f in ["source_KME_ID", "target_KME_ID", "master_SAE_ID", "slave_SAE_ID", "key_size", "stored_key_count",
              "max_key_count", "max_key_per_request", "max_key_size", "min_key_size", "max_SAE_ID_count"]:
        c.true(f"status field {f}", f in body, str(body))
    c.eq("status source", body["source_KME_ID"], "KME_A")
    c.eq("status target", body["target_KME_ID"], "KME_B")
    c.eq("status master", body["master_SAE_ID"], "SAE_A")
    c.eq("status key_size", body["key_size"], 256)
    c.true("status stored_key_count", body["stored_key_count"] > 0)
    st, body, _ = a.call("GET", "/api/v1/keys/SAE%5FB/status")  # URL-encoded SAE ID
    c.eq("url-encoded SAE ID", (st, body.get("slave_SAE_ID")), (200, "SAE_B"))

    # Get key, POST form (5.3), then Get key with key IDs on the other KME, POST form (5.4)
    st, body, _ = a.call("POST", "/api/v1/keys/SAE_B/enc_keys", {"number": 2, "size": 512})
    c.eq("enc_keys POST", st, 200)
    keys = body["keys"]
    c.eq("enc_keys count", len(keys), 2)
    c.eq("key length 512 bits", len(base64.b64decode(keys[0]["key"])), 64)
    c.true("key_ID is a lowercase UUID", keys[0]["key_ID"] == keys[0]["key_ID"].lower() and len(keys[0]["key_ID"]) == 36)
    st, got, _ = b.call("POST", "/api/v1/keys/SAE_A/dec_keys", {"key_IDs": [{"key_ID": k["key_ID"]} for k in keys]})
    c.eq("dec_keys POST", st, 200)
    c.eq("same keys on both sides", [k["key"] for k in got["keys"]], [k["key"] for k in keys])
    st, again, _ = b.call("POST", "/api/v1/keys/SAE_A/dec_keys", {"key_IDs": [{"key_ID": keys[0]["key_ID"]}]})
    c.eq("second dec_keys", (st, again["message"]), (400, "one or more keys specified are not found on KME"))

    # GET forms
    st, body, _ = a.call("GET", "/api/v1/keys/SAE_B/enc_keys?number=1&size=128")
    c.eq("enc_keys GET", (st, len(base64.b64decode(body["keys"][0]["key"]))), (200, 16))
    kid = body["keys"][0]["key_ID"]
    st, got, _ = b.call("GET", f"/api/v1/keys/SAE_A/dec_keys?key_ID={kid}")
    c.eq("dec_keys GET", (st, got["keys"][0]["key"]), (200, body["keys"][0]["key"]))
    st, body, _ = a.call("GET", "/api/v1/keys/SAE_B/enc_keys")
    c.eq("enc_keys GET defaults", (st, len(body["keys"]), len(base64.b64decode(body["keys"][0]["key"]))), (200, 1, 32))
    st, body, _ = a.call("POST", "/api/v1/keys/SAE_B/enc_keys", b"", {"Content-Type": "application/json"})
    c.eq("enc_keys POST with empty body", (st, len(body["keys"])), (200, 1))
    st, body, _ = a.call("POST", "/api/v1/keys/SAE_B/enc_keys", {})
    c.eq("enc_keys POST {}", st, 200)

    # Optional extensions are served and reported as ignored
    st, body, _ = a.call("POST", "/api/v1/keys/SAE_B/enc_keys", {"extension_optional": [{"abc_max_age": 30}]})
    c.eq("extension_optional", (st, body.get("key_container_extension")),
         (200, {"extension_optional_ignored": ["abc_max_age"]}))

    # 400s with the canonical messages
    cases = [
        ({"size": 100}, "size shall be a multiple of 8"),
        ({"extension_mandatory": [{"abc_route_type": "direct"}]}, "not all extension_mandatory parameters are supported"),
    ]
    for req, msg in cases:
        st, body, _ = a.call("POST", "/api/v1/keys/SAE_B/enc_keys", req)
        c.eq(f"400 for {req}", (st, body.get("message")), (400, msg))
    st, body, _ = a.call("POST", "/api/v1/keys/SAE_B/enc_keys", {"extension_mandatory": [{"abc_route_type": "direct"}]})
    c.eq("mandatory details", body.get("details"), [{"extension_mandatory_unsupported": "abc_route_type is not supported"}])
    for req, frag in [({"number": 0}, "at least 1"), ({"number": 1000}, "max_key_per_request"), ({"size": 8}, "min_key_size"),
                      ({"number": "1"}, "must be an integer"), ("{", "not valid JSON"),
                      ({"additional_slave_SAE_IDs": ["NOBODY"]}, "not known"), ({"bogus": 1}, "unknown field")]:
        st, body, _ = a.call("POST", "/api/v1/keys/SAE_B/enc_keys", req)
        c.true(f"400 for {req}", st == 400 and frag in body.get("message", ""), f"{st} {body}")
    st, body, _ = a.call("GET", "/api/v1/keys/SAE_B/enc_keys?number=1&additional_slave_SAE_IDs=SAE_C")
    c.true("GET enc_keys with a POST-only parameter", st == 400 and "use POST" in body["message"], str(body))
    st, body, _ = b.call("GET", "/api/v1/keys/SAE_A/dec_keys?key_ID=a&key_ID=b")
    c.true("GET dec_keys with two key_IDs", st == 400 and "exactly one" in body["message"], str(body))
    st, body, _ = a.call("GET", "/api/v1/keys/NOBODY/status")
    c.eq("unknown slave status", st, 400)
    st, body, _ = b.call("POST", "/api/v1/keys/SAE_A/dec_keys", {"key_IDs": []})
    c.eq("empty key_IDs", st, 400)

    # 401: keys the caller may not read; SAEs of another KME
    st, body, _ = a.call("POST", "/api/v1/keys/SAE_B/enc_keys", {})
    kid = body["keys"][0]["key_ID"]
    st, body, _ = sc.call("POST", "/api/v1/keys/SAE_A/dec_keys", {"key_IDs": [{"key_ID": kid}]})
    c.eq("SAE_C asks its own KME for SAE_B's key", st, 400)  # KME_A holds no reservation for it
    sb_on_a = demo.client("SAE_B", kme="KME_A")
    st, body, _ = sb_on_a.call("GET", "/api/v1/keys/SAE_A/status")
    c.eq("SAE of another KME", st, 401)
    st, body, _ = a.call("POST", "/api/v1/keys/SAE_C/enc_keys", {})
    kid_local = body["keys"][0]["key_ID"]
    st, body, _ = a.call("POST", "/api/v1/keys/SAE_A/dec_keys", {"key_IDs": [{"key_ID": kid_local}]})
    c.eq("master is not a slave of its own key", st, 401)
    st, body, _ = sc.call("POST", "/api/v1/keys/SAE_A/dec_keys", {"key_IDs": [{"key_ID": kid_local}]})
    c.eq("local pair slave", st, 200)

    # Multicast: SAE_B (remote) and SAE_C (local) get the same key once each
    st, body, _ = a.call("POST", "/api/v1/keys/SAE_B/enc_keys", {"additional_slave_SAE_IDs": ["SAE_C"]})
    c.eq("multicast enc_keys", st, 200)
    kid, key = body["keys"][0]["key_ID"], body["keys"][0]["key"]
    st1, g1, _ = b.call("GET", f"/api/v1/keys/SAE_A/dec_keys?key_ID={kid}")
    st2, g2, _ = sc.call("GET", f"/api/v1/keys/SAE_A/dec_keys?key_ID={kid}")
    c.eq("multicast slaves", (st1, st2, g1["keys"][0]["key"], g2["keys"][0]["key"]), (200, 200, key, key))

    # HTTP-level errors
    st, body, r = a.call("PUT", "/api/v1/keys/SAE_B/enc_keys", {})
    c.eq("PUT -> 405", (st, r.getheader("Allow")), (405, "GET, POST"))
    st, body, _ = a.call("POST", "/api/v1/keys/SAE_B/status", {})
    c.eq("POST status -> 405", st, 405)
    st, body, _ = a.call("GET", "/api/v1/keys/SAE_B/enc_keys?%FF%C3=1")  # invalid UTF-8 quoted in the message
    c.true("invalid UTF-8 in a query name -> 400", st == 400 and "not allowed" in body.get("message", ""), str(body))
    st, body, _ = demo.client("SAE_A").call("GET", "/api/v1/keys/SAE_B/status")
    c.eq("still serving after it", st, 200)
    st, body, _ = a.call("GET", "/api/v2/whatever")
    c.eq("unknown path -> 404", st, 404)
    st, body, _ = demo.client("SAE_A").call("POST", "/api/v1/keys/SAE_B/enc_keys", "{" + " " * 70000 + "}")
    c.eq("oversized body -> 413", st, 413)

    # mTLS is mandatory: no client certificate, or one from another CA, gets no connection
    try:
        demo.client("SAE_A", cert=False).call("GET", "/api/v1/keys/SAE_B/status")
        c.true("no client certificate refused", False)
    except (ssl.SSLError, ConnectionError, OSError):
        c.true("no client certificate refused", True)

    # Keep-alive: many requests on one connection
    for _ in range(20):
        st, _, _ = a.call("GET", "/api/v1/keys/SAE_B/status")
    c.eq("keep-alive", st, 200)

    # Metrics
    murl = [m["url"] for m in demo.info["metrics"] if m["kme_id"] == "KME_A"][0]
    text = urllib.request.urlopen(murl, timeout=5).read().decode()
    c.true("metrics keys served", 'qkd_kme_keys_served_total{kme="KME_A",role="master"}' in text)
    c.true("metrics pool level", 'qkd_kme_pool_bits{kme="KME_A",direction="KME_A->KME_B"}' in text)
    c.true("metrics requests by status", 'endpoint="enc_keys",status="400"' in text)
    c.true("metrics histogram", 'qkd_kme_request_seconds_bucket{kme="KME_A",endpoint="enc_keys",le="+Inf"}' in text)
    c.true("no key material in metrics", all(k["key"] not in text for k in keys))
finally:
    rc = demo.stop()
c.eq("demo exit code after SIGTERM", rc, 0)
sys.exit(c.done())
