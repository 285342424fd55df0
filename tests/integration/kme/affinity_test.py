#!/usr/bin/env python3
"""[kme] cpu_affinity on a real `qkd-kme serve`: the event-loop thread runs on the configured CPU
while the helper threads keep floating, the KME still answers over mTLS, and a CPU the process may
not use is refused at start-up (and by `qkd-kme check-config`) with the file, the key and the allowed CPUs."""
import http.client
import json
import os
import re
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from kmetest import Checks, KmeAConfig  # noqa: E402

BIN = sys.argv[1]
c = Checks()
allowed = sorted(os.sched_getaffinity(0))
target = allowed[-1]  # the last allowed CPU, so the pin differs from "first CPU" defaults

kme = KmeAConfig(BIN, "qkd-kme-affinity-")
d, cfg_path, port, write_cfg = kme.dir, kme.path, kme.port, kme.write


def cpus_of(pid, tid):
    with open(f"/proc/{pid}/task/{tid}/status") as f:
        text = f.read()
    listed = re.search(r"(?m)^Cpus_allowed_list:\s*(\S+)", text).group(1)
    out = set()
    for part in listed.split(","):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return sorted(out)


# ---- pinned: cpu_affinity = [target], threads = 1 ----------------------------------------------
write_cfg(f"threads = 1\ncpu_affinity = [{target}]")
log = open(os.path.join(d, "kme_a.log"), "w+")
proc = subprocess.Popen([BIN, "serve", "-c", cfg_path], stdout=log, stderr=subprocess.STDOUT)
try:
    ctx = ssl.create_default_context(cafile=os.path.join(d, "pki/ca.pem"))
    ctx.load_cert_chain(os.path.join(d, "pki/sae_a.pem"), os.path.join(d, "pki/sae_a.key"))
    deadline = time.time() + 30
    status = None
    while status is None:
        try:
            conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
            conn.request("GET", "/api/v1/keys/SAE_B/status")
            r = conn.getresponse()
            status, body = r.status, json.loads(r.read())
            conn.close()
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                log.seek(0)
                raise RuntimeError("KME_A did not start: " + log.read())
            time.sleep(0.05)
    c.eq("pinned KME answers Get status", status, 200)
    c.eq("pinned KME: source_KME_ID", body.get("source_KME_ID"), "KME_A")
    # The main thread runs the (only) event loop; the checkpointer was started before the pin.
    tids = sorted(int(t) for t in os.listdir(f"/proc/{proc.pid}/task"))
    c.eq("event-loop thread runs only on the configured CPU", cpus_of(proc.pid, proc.pid), [target])
    others = [cpus_of(proc.pid, t) for t in tids if t != proc.pid]
    c.true("there are helper threads", len(others) > 0, f"threads: {tids}")
    if len(allowed) > 1:
        c.true("helper threads are not pinned", all(o == allowed for o in others), f"helpers on {others}, allowed {allowed}")
    else:
        print("one CPU only: the helper threads' affinity cannot differ from the event loop's (not checked)")
    log.seek(0)
    c.true("the log says where the event loop runs", f"1 event-loop threads, on CPU {target}" in log.read())
finally:
    proc.terminate()
    rc = proc.wait(timeout=20)
c.eq("pinned KME exits cleanly on SIGTERM", rc, 0)

# ---- a CPU this process may not use --------------------------------------------------------------
bad = 1023 if 1023 not in allowed else None
if bad is None:
    print("CPU 1023 is allowed on this machine: the refusal case is not checked")
else:
    write_cfg(f"cpu_affinity = [{bad}]")
    allowed_text = ",".join(str(x) for x in allowed)
    for what, args in (("serve", ["serve", "-c", cfg_path]), ("check-config", ["check-config", "-c", cfg_path])):
        r = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=30)
        c.eq(f"{what} with an unavailable CPU: exit code", r.returncode, 2)
        msg = r.stderr.strip()
        c.true(f"{what}: the error names the file, the key and the CPU",
               f"{cfg_path}: key 'kme.cpu_affinity': CPU {bad} is not available to this process" in msg, msg)
        # The allowed list is printed as ranges (0-1); compare the CPUs it covers.
        m = re.search(r"it may run on CPUs (\S+)", msg)
        listed = set()
        for part in (m.group(1) if m else "").split(","):
            if part:
                lo, _, hi = part.partition("-")
                listed.update(range(int(lo), int(hi or lo) + 1))
        c.eq(f"{what}: the error lists the allowed CPUs ({allowed_text})", sorted(listed), allowed)

sys.exit(c.done())
