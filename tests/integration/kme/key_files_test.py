#!/usr/bin/env python3
"""Two KMEs whose KME_A<->KME_B link is fed by key files ([[peer]] key_dir), as a QKD device drops
them: identical random files in two folders, written under a temporary name and renamed. Keys are
the halves of the files at the right offsets on both ends; a file dropped while running is taken;
kill -9 of KME_A never makes it hand out key bytes twice and leaves keys delivered before the kill
retrievable by their slave; an empty folder is a 503 that says where the keys should come from; a
link declared one-way (key_dir_direction) uses whole files for that direction, and an index built
for another choice stops the KME at start.
Usage: key_files_test.py QKD_KME_BINARY"""
import base64
import http.client
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from kmetest import Checks, DemoDir  # noqa: E402

BIN = sys.argv[1]
FILE_BYTES = 16384  # 8 KiB per direction and file: 256 keys of 256 bits
KEY_BYTES = 32
c = Checks()
d = tempfile.mkdtemp(prefix="qkd-kme-key-files-")
subprocess.run([BIN, "demo", d, "--prepare-only", "--log-level", "warn"], check=True, stdout=subprocess.DEVNULL)
folders = {"a": os.path.join(d, "keys_a"), "b": os.path.join(d, "keys_b")}


def edit(name, pattern, repl):
    p = os.path.join(d, name)
    text, n = re.subn(pattern, repl, open(p).read())
    assert n == 1, f"{pattern!r} not found in {name}"
    open(p, "w").write(text)


# The link's material from key files (relative to the config file); no stock of keys reserved
# ahead, so offsets follow the requests.
for k in ("a", "b"):
    os.makedirs(folders[k], mode=0o700)  # owner-only: others may not open key_dir (secrets at rest)
    edit(f"kme_{k}.toml", r'(?m)^link_seed_file = .*\n', f'key_dir = "keys_{k}"\n')
    edit(f"kme_{k}.toml", r"(?m)^key_rate = .*\n", "")
    edit(f"kme_{k}.toml", r"(?m)^prefetch_keys = .*$", "prefetch_keys = 0")

port, metrics_port = {}, {}
for k in ("a", "b"):
    text = open(os.path.join(d, f"kme_{k}.toml")).read()
    port[k] = int(re.search(r'(?m)^listen = "127\.0\.0\.1:(\d+)"', text).group(1))
    metrics_port[k] = int(re.search(r'(?m)^metrics_listen = "127\.0\.0\.1:(\d+)"', text).group(1))
files = []  # (name, bytes) in the order dropped


def drop(name, data):
    """Into both folders, as a device does: write a temporary name, then rename."""
    for f in folders.values():
        tmp = os.path.join(f, name + ".tmp")
        with open(tmp, "wb") as out:
            out.write(data)
        os.rename(tmp, os.path.join(f, name))
    files.append((name, data))


def stream(first_half):
    """KME_A->KME_B is the first half of every file (KME_A < KME_B), KME_B->KME_A the second."""
    h = FILE_BYTES // 2
    return b"".join(data[:h] if first_half else data[h:2 * h] for _, data in sorted(files))


call = DemoDir(d).call


def enc(sae, slave, k, number=1):
    return call(sae, k, "POST", f"/api/v1/keys/{slave}/enc_keys", {"number": number})


def dec(sae, master, k, ids):
    return call(sae, k, "POST", f"/api/v1/keys/{master}/dec_keys", {"key_IDs": [{"key_ID": i} for i in ids]})


def stored(sae, slave, k):
    st, body = call(sae, k, "GET", f"/api/v1/keys/{slave}/status")
    return body["stored_key_count"] if st == 200 else None


def metric(k, name):
    h = http.client.HTTPConnection("127.0.0.1", metrics_port[k], timeout=5)
    h.request("GET", "/metrics")
    m = re.search(r"(?m)^" + name + r"\{[^}]*\} (\S+)$", h.getresponse().read().decode())
    return int(float(m.group(1))) if m else None


procs = {}


def start(k):
    procs[k] = subprocess.Popen([BIN, "serve", "-c", os.path.join(d, f"kme_{k}.toml")], stdout=subprocess.DEVNULL,
                                stderr=open(os.path.join(d, f"kme_{k}.log"), "a"))


def wait_ready(k):
    sae, peer = ("SAE_A", "SAE_B") if k == "a" else ("SAE_B", "SAE_A")
    deadline = time.time() + 30
    while True:
        try:
            if call(sae, k, "GET", f"/api/v1/keys/{peer}/status")[0] == 200:
                return
        except OSError:
            pass
        if procs[k].poll() is not None or time.time() > deadline:
            raise RuntimeError(f"KME_{k.upper()} did not start: " + open(os.path.join(d, f"kme_{k}.log")).read()[-3000:])
        time.sleep(0.05)


def wait_for(what, fn, want, timeout=5.0):
    deadline = time.time() + timeout
    got = fn()
    while got != want and time.time() < deadline:
        time.sleep(0.05)
        got = fn()
    c.eq(what, got, want)


def key_bytes(k):
    return base64.b64decode(k["key"])


try:
    for k in ("a", "b"):
        start(k)
    for k in ("a", "b"):  # both answer before anything else (KME_B may start later than KME_A)
        wait_ready(k)

    # An empty folder: 503, and the message says where the material should come from.
    st, body = enc("SAE_A", "SAE_B", "a")
    c.eq("empty folder: Get key", st, 503)
    msg = (body or {}).get("message", "")
    c.true("empty folder: the message names the link and key_dir", "KME_A->KME_B" in msg and folders["a"] in msg, msg)
    c.eq("empty folder: stored_key_count", stored("SAE_A", "SAE_B", "a"), 0)

    for i in range(1, 5):
        drop(f"{i:06d}", os.urandom(FILE_BYTES))
    per_file = FILE_BYTES // 2 // KEY_BYTES
    wait_for("four files: stored_key_count", lambda: stored("SAE_A", "SAE_B", "a"), 4 * per_file)
    c.eq("four files: qkd_kme_key_files", metric("a", "qkd_kme_key_files"), 4)

    # Master and slave get the first half of file 1, from offset 0.
    ab = stream(True)
    st, m = enc("SAE_A", "SAE_B", "a", 2)
    c.eq("Get key", st, 200)
    master = {}  # key_ID -> bytes, every key a master got from KME_A
    if st == 200:
        got = [key_bytes(k) for k in m["keys"]]
        c.eq("key 1 is bytes 0..32 of KME_A->KME_B", got[0], ab[0:32])
        c.eq("key 2 is bytes 32..64", got[1], ab[32:64])
        master.update({k["key_ID"]: key_bytes(k) for k in m["keys"]})
        st, s = dec("SAE_B", "SAE_A", "b", [k["key_ID"] for k in m["keys"]])
        c.eq("Get key with key IDs", st, 200)
        c.eq("the slave gets the same bytes", [key_bytes(k) for k in s["keys"]] if st == 200 else None, got)
    # KME_B as master serves the second halves.
    st, mb = enc("SAE_B", "SAE_A", "b")
    c.eq("Get key on KME_B", st, 200)
    if st == 200:
        c.eq("KME_B->KME_A starts with the second half of file 1", key_bytes(mb["keys"][0]), stream(False)[0:32])
        st, sb = dec("SAE_A", "SAE_B", "a", [mb["keys"][0]["key_ID"]])
        c.eq("its slave on KME_A", key_bytes(sb["keys"][0]) if st == 200 else None, key_bytes(mb["keys"][0]))

    # A file dropped while running is taken.
    before = stored("SAE_A", "SAE_B", "a")
    drop("000005", os.urandom(FILE_BYTES))
    wait_for("a fifth file adds its keys", lambda: stored("SAE_A", "SAE_B", "a"), before + per_file)

    # Keys handed out before a kill -9 of KME_A; one batch left for its slave.
    pending = []
    for i in range(20):
        st, m = enc("SAE_A", "SAE_B", "a", 4)
        c.eq(f"load {i}: Get key", st, 200)
        if st == 200:
            master.update({k["key_ID"]: key_bytes(k) for k in m["keys"]})
            pending = [k["key_ID"] for k in m["keys"]]
            if i < 19:
                dec("SAE_B", "SAE_A", "b", pending)
    before_kill = dict(master)
    procs["a"].send_signal(signal.SIGKILL)
    procs["a"].wait()
    start("a")
    wait_ready("a")
    st, s = dec("SAE_B", "SAE_A", "b", pending)
    c.eq("after the kill: keys delivered before it are retrievable by SAE_B", st, 200)
    if st == 200:
        c.eq("after the kill: the same bytes", [key_bytes(k) for k in s["keys"]], [master[i] for i in pending])
    for i in range(10):
        st, m = enc("SAE_A", "SAE_B", "a", 4)
        c.eq(f"after the kill {i}: Get key", st, 200)
        if st == 200:
            master.update({k["key_ID"]: key_bytes(k) for k in m["keys"]})
            dec("SAE_B", "SAE_A", "b", [k["key_ID"] for k in m["keys"]])

    # No key bytes twice: every master key is a distinct, non-overlapping range of KME_A->KME_B.
    ab = stream(True)
    offsets = sorted(ab.find(v) for v in master.values())
    c.true("every key is a range of the KME_A->KME_B stream", all(o >= 0 and o % KEY_BYTES == 0 for o in offsets), offsets[:8])
    c.eq("no key material handed out twice", len(set(offsets)), len(master))
    c.eq("keys delivered", len(master), 2 + 80 + 40)
    old = [ab.find(v) for v in before_kill.values()]
    new = [ab.find(v) for i, v in master.items() if i not in before_kill]
    c.true("keys after the restart come from beyond the ones before it", new and min(new) > max(old), (max(old), min(new or [0])))

    # A link used one way (key_dir_direction): SAE_A is always the master. The indexes hold files
    # split in halves, so KME_A refuses to start with the other choice, and says why.
    for p in procs.values():
        p.kill()
        p.wait()
    edit("kme_a.toml", r'(?m)^key_dir = "keys_a"\n', 'key_dir = "keys_a"\nkey_dir_direction = "outgoing"\n')
    edit("kme_b.toml", r'(?m)^key_dir = "keys_b"\n', 'key_dir = "keys_b"\nkey_dir_direction = "incoming"\n')
    r = subprocess.run([BIN, "serve", "-c", os.path.join(d, "kme_a.toml")], capture_output=True, text=True, timeout=30)
    c.true("another direction on a used index: KME_A stops at start", r.returncode != 0, r.returncode)
    c.true("... naming the index and both choices", "kme_a.sqlite.keyfiles-KME_B" in r.stderr
           and 'built with key_dir_direction = "both", the configuration now says "outgoing"' in r.stderr, r.stderr[-600:])
    # Started over as docs/kme.md says: indexes, state databases and both folders emptied.
    for k in ("a", "b"):
        for f in os.listdir(os.path.join(d, "state")):
            if f.startswith(f"kme_{k}.sqlite"):
                os.remove(os.path.join(d, "state", f))
        for f in os.listdir(folders[k]):
            os.remove(os.path.join(folders[k], f))
    files.clear()
    for k in ("a", "b"):
        start(k)
    for k in ("a", "b"):
        wait_ready(k)
    drop("100001", os.urandom(FILE_BYTES))
    wait_for("one-way: a whole file of keys for SAE_A", lambda: stored("SAE_A", "SAE_B", "a"), FILE_BYTES // KEY_BYTES)
    whole = b"".join(data for _, data in sorted(files))
    st, m = enc("SAE_A", "SAE_B", "a", 4)
    c.eq("one-way: Get key", st, 200)
    if st == 200:
        got = [key_bytes(k) for k in m["keys"]]
        c.eq("one-way: keys are the file's bytes from its start", got, [whole[i * 32:(i + 1) * 32] for i in range(4)])
        st, s = dec("SAE_B", "SAE_A", "b", [k["key_ID"] for k in m["keys"]])
        c.eq("one-way: the slave gets the same bytes", [key_bytes(k) for k in s["keys"]] if st == 200 else None, got)
    st, body = enc("SAE_B", "SAE_A", "b")
    c.eq("one-way: KME_B's SAE as master", st, 503)
    msg = (body or {}).get("message", "")
    c.true("one-way: ... told that the files go the other way", 'key_dir_direction = "incoming"' in msg, msg)
    c.eq("one-way: stored_key_count for SAE_B", stored("SAE_B", "SAE_A", "b"), 0)
finally:
    for p in procs.values():
        p.kill()
        p.wait()
sys.exit(c.done())
