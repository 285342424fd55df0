#!/usr/bin/env python3
"""Secrets at rest (issue 17, item 4): the demo's PKI and state folders, the link seed, the private
keys and the state database (with its WAL) are owner-only; `serve` and `check-config` refuse a
seed, private key, state file or key_dir that other users can open, naming the file and the fix."""
import os
import re
import ssl
import http.client
import stat
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from kmetest import Checks, KmeAConfig  # noqa: E402

BIN = sys.argv[1]
c = Checks()
kme = KmeAConfig(BIN, "qkd-kme-secrets-")
d = kme.dir


def mode(rel):
    return stat.S_IMODE(os.stat(os.path.join(d, rel)).st_mode)


c.eq("pki folder owner-only", mode("pki"), 0o700)
c.eq("state folder owner-only", mode("state"), 0o700)
c.eq("link seed owner-only", mode("pki/link_ab.seed"), 0o600)
c.eq("KME private key owner-only", mode("pki/kme_a.key"), 0o600)
c.eq("CA private key owner-only", mode("pki/ca.key"), 0o600)

# serve creates the state database (and its WAL) owner-only, even under a permissive umask.
kme.write("")
log = open(os.path.join(d, "kme_a.log"), "w+")
proc = subprocess.Popen([BIN, "serve", "-c", kme.path], stdout=log, stderr=subprocess.STDOUT, preexec_fn=lambda: os.umask(0o022))
try:
    ctx = ssl.create_default_context(cafile=os.path.join(d, "pki/ca.pem"))
    ctx.load_cert_chain(os.path.join(d, "pki/sae_a.pem"), os.path.join(d, "pki/sae_a.key"))
    deadline = time.time() + 30
    while True:
        try:
            conn = http.client.HTTPSConnection("127.0.0.1", kme.port, context=ctx, timeout=10)
            conn.request("POST", "/api/v1/keys/SAE_C/enc_keys", body="{}", headers={"Content-Type": "application/json"})
            st = conn.getresponse().status
            conn.close()
            if st == 200:
                break
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            log.seek(0)
            raise RuntimeError("KME_A did not start: " + log.read())
        time.sleep(0.05)
    for f in ("state/kme_a.sqlite", "state/kme_a.sqlite-wal", "state/kme_a.sqlite-shm"):
        c.eq(f"{f} owner-only", mode(f), 0o600)
finally:
    proc.terminate()
    c.eq("KME exits cleanly on SIGTERM", proc.wait(timeout=20), 0)


def refused(what, rel, key, fix):
    """check-config and serve both refuse, naming the config file, the key, the path and the fix."""
    path = os.path.join(d, rel)
    for cmd in ("check-config", "serve"):
        r = subprocess.run([BIN, cmd, "-c", kme.path], capture_output=True, text=True, timeout=30)
        out = r.stdout + r.stderr
        c.true(f"{what}: {cmd} refuses", r.returncode != 0 and f"kme_a.toml: key '{key}': {path}" in out and fix in out, out[-600:])


for rel, key, what in (("pki/link_ab.seed", "peer[0].link_seed_file", "seed readable by others"),
                       ("pki/kme_a.key", "kme.key", "private key readable by others"),
                       ("state/kme_a.sqlite", "kme.state_db", "state database readable by others"),
                       ("state/kme_a.sqlite-wal", "kme.state_db", "WAL readable by others")):
    if not os.path.exists(os.path.join(d, rel)):
        open(os.path.join(d, rel), "wb").close()
    os.chmod(os.path.join(d, rel), 0o644)
    refused(what, rel, key, f"chmod 600 {os.path.join(d, rel)}")
    os.chmod(os.path.join(d, rel), 0o640)  # group-readable is refused too (as ssh does)
    refused(what + " (group)", rel, key, "chmod 600")
    os.chmod(os.path.join(d, rel), 0o600)
r = subprocess.run([BIN, "check-config", "-c", kme.path], capture_output=True, text=True, timeout=30)
c.eq("all owner-only again: check-config passes", (r.returncode, r.stderr), (0, ""))

# key_dir: others may not list or enter it; the group may (a device agent of another user).
with open(kme.path) as f:
    text = f.read()
with open(kme.path, "w") as f:
    text = re.sub(r'(?m)^link_seed_file = .*\n', 'key_dir = "keys"\n', text)
    f.write(re.sub(r"(?m)^key_rate = .*\n", "", text))
os.mkdir(os.path.join(d, "keys"), 0o700)
os.chmod(os.path.join(d, "keys"), 0o755)
refused("key_dir open to others", "keys", "peer[0].key_dir", "chmod o-rwx")
os.chmod(os.path.join(d, "keys"), 0o750)
r = subprocess.run([BIN, "check-config", "-c", kme.path], capture_output=True, text=True, timeout=30)
c.eq("key_dir open to the group only: accepted", (r.returncode, r.stderr), (0, ""))
sys.exit(c.done())
