#!/usr/bin/env python3
"""Get status under load (issue 17, item 5): while masters take keys (prefetching on, the demo's
default), a poller reads Get status over and over; stored_key_count must never exceed
max_key_count (a C client library's sanity check refuses such an answer), and once the load stops
it must come back to the full buffer, i.e. count exactly what can be handed out."""
import sys
import threading
import time

sys.path.insert(0, __import__("os").path.dirname(__file__))
from kmetest import Checks, Demo  # noqa: E402

c = Checks()
demo = Demo(sys.argv[1])
try:
    stop = threading.Event()
    bad, seen, errors = [], [], []
    served = [0]

    def poll(slave):
        cl = demo.client("SAE_A")
        while not stop.is_set():
            st, body, _ = cl.call("GET", f"/api/v1/keys/{slave}/status")
            if st != 200:
                errors.append((st, body))
                continue
            seen.append(body["stored_key_count"])
            if not 0 <= body["stored_key_count"] <= body["max_key_count"]:
                bad.append(body)

    def take(slave, number):
        cl = demo.client("SAE_A")
        while not stop.is_set():
            st, body, _ = cl.call("POST", f"/api/v1/keys/{slave}/enc_keys", {"number": number})
            if st == 200:
                served[0] += len(body["keys"])
            else:
                errors.append((st, body))

    threads = [threading.Thread(target=poll, args=("SAE_B",)), threading.Thread(target=poll, args=("SAE_C",)),
               threading.Thread(target=take, args=("SAE_B", 1)), threading.Thread(target=take, args=("SAE_B", 4)),
               threading.Thread(target=take, args=("SAE_C", 2))]
    for t in threads:
        t.start()
    time.sleep(4)
    stop.set()
    for t in threads:
        t.join()
    c.true("keys were taken under load", served[0] > 100, f"served {served[0]}")
    c.true("status was polled under load", len(seen) > 100, f"polled {len(seen)}")
    c.eq("no request failed", errors[:3], [])
    c.eq("stored_key_count never above max_key_count (or negative)", bad[:3], [])
    # Load over: the prefetch stock ages out (at most 1 s) and the pool refills into its place at
    # 1 Mbit/s; the count is the full buffer again, not the buffer plus the stock.
    a = demo.client("SAE_A")
    st, body, _ = a.call("POST", "/api/v1/keys/SAE_B/enc_keys", {})  # a fresh stock right now
    c.eq("one more key", st, 200)
    st, now, _ = a.call("GET", "/api/v1/keys/SAE_B/status")
    c.true("right after a Get key: within the buffer", now["stored_key_count"] <= now["max_key_count"], str(now))
    time.sleep(1.2)
    for slave in ("SAE_B", "SAE_C"):
        deadline = time.time() + 3
        while True:
            st, body, _ = a.call("GET", f"/api/v1/keys/{slave}/status")
            if st != 200 or body["stored_key_count"] == body["max_key_count"] or time.time() > deadline:
                break
            time.sleep(0.1)
        c.eq(f"quiet link to {slave}: full buffer", (st, body["stored_key_count"]), (200, body["max_key_count"]))
finally:
    rc = demo.stop()
c.eq("demo exit code after SIGTERM", rc, 0)
sys.exit(c.done())
