#!/usr/bin/env python3
"""Connection limits of a real `qkd-kme serve`:
- kme.max_connections: beyond it, new connections wait in the listen backlog (their TLS handshake
  does not start) and are taken as soon as an open one closes;
- the open-files limit: `serve` raises its soft limit towards the hard one, and lowers its
  connection cap below the limit (warning at start-up) so that clients cannot take the descriptors
  the state database and peer links need;
- out of file descriptors anyway (here through the metrics endpoint, which has no cap): both accept
  loops pause instead of spinning and logging every try, and serve again once descriptors are free."""
import http.client
import json
import os
import re
import resource
import socket
import ssl
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from kmetest import Checks, KmeAConfig  # noqa: E402

BIN = sys.argv[1]
c = Checks()
kme = KmeAConfig(BIN, "qkd-kme-limits-")
d, cfg_path, port = kme.dir, kme.path, kme.port
ctx = ssl.create_default_context(cafile=os.path.join(d, "pki/ca.pem"))
ctx.load_cert_chain(os.path.join(d, "pki/sae_a.pem"), os.path.join(d, "pki/sae_a.key"))


def start(extra, nofile=None):  # nofile: (soft, hard)
    kme.write(extra)
    log = open(os.path.join(d, "kme_a.log"), "w+")

    def limit():
        if nofile:
            resource.setrlimit(resource.RLIMIT_NOFILE, nofile)

    proc = subprocess.Popen([BIN, "serve", "-c", cfg_path], stdout=log, stderr=subprocess.STDOUT, preexec_fn=limit)
    deadline = time.time() + 30
    while True:
        try:
            status(timeout=2)
            return proc, log
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                log.seek(0)
                raise RuntimeError("KME_A did not start: " + log.read())
            time.sleep(0.05)


def tls(timeout=5):
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return ctx.wrap_socket(raw, server_hostname="127.0.0.1")


def status(conn=None, timeout=5):
    """Get status over `conn` (an open TLS socket) or a new connection; returns the HTTP status."""
    s = conn or tls(timeout)
    s.sendall(b"GET /api/v1/keys/SAE_B/status HTTP/1.1\r\nHost: kme\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            raise ConnectionError("closed before a response")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))
    while len(body) < length:
        body += s.recv(4096)
    if conn is None:
        s.close()
    return int(head.split()[1])


def status_when_up(seconds=10):
    deadline = time.time() + seconds
    got = None
    while time.time() < deadline and got != 200:
        try:
            got = status(timeout=2)
        except OSError:
            time.sleep(0.1)
    return got


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop(proc, what):
    proc.terminate()
    try:
        c.eq(f"{what}: exit code after SIGTERM", proc.wait(timeout=20), 0)
    except subprocess.TimeoutExpired:
        proc.kill()
        c.true(f"{what}: stops on SIGTERM", False)


# ---- kme.max_connections = 3 ---------------------------------------------------------------------
proc, log = start("max_connections = 3")
try:
    time.sleep(0.3)  # the start-up probe's connection is closed and swept
    held = [tls() for _ in range(3)]
    c.eq("three connections under the cap answer", [status(h) for h in held], [200, 200, 200])
    done = {}

    def fourth():
        try:
            s = tls(timeout=10)  # returns once the handshake is complete
            done["at"] = time.time()
            done["status"] = status(s)
            s.close()
        except Exception as e:  # noqa: BLE001
            done["error"] = repr(e)

    t = threading.Thread(target=fourth)
    t.start()
    time.sleep(1.0)
    c.true("a fourth connection waits while three are open", "at" not in done and "error" not in done, str(done))
    closed_at = time.time()
    held.pop().close()
    t.join(15)
    c.true("the fourth connection is served once one closes", done.get("status") == 200, str(done))
    if "at" in done:
        waited = done["at"] - closed_at
        print(f"fourth connection's handshake completed {waited:.2f} s after a slot freed")
        # The sweeper looks every 100 ms; the rest is a TLS handshake on a busy 2-core machine.
        c.true("within 3 s of the slot freeing", 0 <= waited < 3.0, f"{waited:.2f} s")
    c.eq("the held connections still answer", [status(h) for h in held], [200, 200])
    for h in held:
        h.close()
    log.seek(0)
    c.true("the cap is logged", "connections open (kme.max_connections); new connections wait" in log.read())
finally:
    stop(proc, "max_connections server")

# ---- soft limit below the hard one: raised --------------------------------------------------------
proc, log = start("", nofile=(64, 4096))
try:
    time.sleep(0.2)
    log.seek(0)
    text = log.read()
    # Raised to the hard limit (10000 + 256 would be wanted): 4096 - 32 connections. Not raised, it would say 32.
    c.true("the soft open-files limit is raised to the hard one", "at most 4064 connections at once (the open-files limit 4096" in text,
           text[-2000:])
finally:
    stop(proc, "raised-limit server")


def metrics_port():
    with open(cfg_path) as f:
        return int(re.search(r'(?m)^metrics_listen = "127\.0\.0\.1:(\d+)"', f.read()).group(1))


# ---- open-files limit 72 (hard): the connection cap comes down to 72 - 32 = 40 ---------------------
proc, log = start("", nofile=(72, 72))
raws = []
try:
    log.seek(0)
    c.true("start-up warns that the open-files limit caps the connections",
           "at most 40 connections at once (the open-files limit 72 less 32 kept" in log.read())
    for _ in range(60):  # more than the cap: the rest stay in the backlog
        raws.append(socket.create_connection(("127.0.0.1", port), timeout=5))
    time.sleep(0.5)
    log.seek(0)
    text = log.read()
    c.true("the cap is reached and logged", "40 connections open (the open-files limit 72" in text, text[-2000:])
    c.true("the cap keeps the server from running out of descriptors", "Too many open files" not in text)
    c0, t0 = cpu_seconds(proc.pid), time.time()
    time.sleep(1.0)
    used = (cpu_seconds(proc.pid) - c0) / (time.time() - t0)
    c.true("idle while at the cap", used < 0.2, f"{used:.3f} cores")
    for r in raws:
        r.close()
    raws = []
    c.eq("serves again below the cap", status_when_up(), 200)

    # The metrics endpoint has no cap: 60 connections to it use up the descriptors, and then the
    # API's accept runs out too. Neither loop may spin.
    mport = metrics_port()

    def open_fds():
        return len(os.listdir(f"/proc/{proc.pid}/fd"))

    # Until the server holds all 72 descriptors (its accepts then fail; the rest wait in the backlog).
    deadline = time.time() + 10
    while open_fds() < 72 and len(raws) < 100 and time.time() < deadline:
        raws.append(socket.create_connection(("127.0.0.1", mport), timeout=5))
        time.sleep(0.01)
    for _ in range(10):
        raws.append(socket.create_connection(("127.0.0.1", port), timeout=5))
    time.sleep(0.5)
    log.seek(0)
    c.true("the server ran out of descriptors", "Too many open files" in log.read(),
           f"{open_fds()} descriptors open after {len(raws)} connections")
    c0, t0 = cpu_seconds(proc.pid), time.time()
    time.sleep(1.5)
    used = (cpu_seconds(proc.pid) - c0) / (time.time() - t0)
    print(f"KME CPU while out of descriptors: {used:.3f} cores")
    c.true("the accept loops do not spin while out of descriptors", used < 0.2, f"{used:.3f} cores")
    log.seek(0)
    n = log.read().count("Too many open files")
    # One warning per 10 s: this part takes about 3 s.
    c.true("the lack of descriptors is logged once, not for every try", n == 1, f"{n} lines")
    for r in raws:
        r.close()
    raws = []
    c.eq("serves again once descriptors are free", status_when_up(), 200)
    m = http.client.HTTPConnection("127.0.0.1", mport, timeout=5)
    m.request("GET", "/metrics")
    c.eq("metrics answer again", m.getresponse().status, 200)
    m.close()
finally:
    for r in raws:
        r.close()
    stop(proc, "descriptor-limited server")

sys.exit(c.done())
