"""Helpers for the KME integration tests: start the demo, make mTLS calls as a given SAE."""
import http.client
import json
import os
import re
import signal
import ssl
import subprocess
import tempfile
import time


class Demo:
    def __init__(self, binary, *extra):
        self.dir = tempfile.mkdtemp(prefix="qkd-kme-it-")
        self.log = open(os.path.join(self.dir, "demo.log"), "w+")
        self.proc = subprocess.Popen([binary, "demo", self.dir, "--quiet", "--log-level", "warn", *extra],
                                     stdout=self.log, stderr=subprocess.STDOUT, text=True)
        path = os.path.join(self.dir, "demo.json")
        deadline = time.time() + 60
        while not os.path.exists(path):
            if self.proc.poll() is not None:
                raise RuntimeError("demo exited early: " + self.output())
            if time.time() > deadline:
                raise RuntimeError("demo.json did not appear within 60 s")
            time.sleep(0.1)
        with open(path) as f:
            self.info = json.load(f)
        self.urls = {k["kme_id"]: k["url"] for k in self.info["kmes"]}
        self.saes = {s["sae_id"]: s for s in self.info["saes"]}

    def output(self):
        self.log.flush()
        with open(self.log.name) as f:
            return f.read()[-20000:]

    def path(self, rel):
        return os.path.join(self.dir, rel)

    def client(self, sae, kme=None, cert=True):
        """An HTTPS connection to KME `kme` (default: the SAE's own) as SAE `sae`."""
        s = self.saes[sae]
        kme = kme or s["kme_id"]
        ctx = ssl.create_default_context(cafile=self.path(self.info["ca"]))
        if cert:
            ctx.load_cert_chain(self.path(s["cert"]), self.path(s["key"]))
        host, port = self.urls[kme][len("https://"):].split(":")
        return Client(http.client.HTTPSConnection(host, int(port), context=ctx, timeout=10))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                raise RuntimeError("demo did not stop on SIGTERM: " + self.output())
        if self.proc.returncode != 0:
            print(self.output())
        return self.proc.returncode


class Client:
    def __init__(self, conn):
        self.conn = conn

    def call(self, method, path, body=None, headers=None):
        h = {"Content-Type": "application/json"} if body is not None else {}
        h.update(headers or {})
        data = body if isinstance(body, (bytes, str)) or body is None else json.dumps(body)
        self.conn.request(method, path, body=data, headers=h)
        r = self.conn.getresponse()
        raw = r.read()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw
        return r.status, parsed, r


class Checks:
    def __init__(self):
        self.failed = 0
        self.passed = 0

    def eq(self, what, got, want):
        if got == want:
            self.passed += 1
        else:
            self.failed += 1
            print(f"FAIL {what}: got {got!r}, want {want!r}")

    def true(self, what, cond, detail=""):
        if cond:
            self.passed += 1
        else:
            self.failed += 1
            print(f"FAIL {what} {detail}")

    def done(self):
        print(f"{self.passed} checks passed, {self.failed} failed")
        return 1 if self.failed else 0


class KmeAConfig:
    """The demo's PKI and KME_A config in a fresh folder (`demo --prepare-only`), for tests that run
    `qkd-kme serve` with extra [kme] keys."""

    def __init__(self, binary, prefix):
        self.dir = tempfile.mkdtemp(prefix=prefix)
        subprocess.run([binary, "demo", self.dir, "--prepare-only", "--log-level", "warn"], check=True,
                       stdout=subprocess.DEVNULL)
        self.path = os.path.join(self.dir, "kme_a.toml")
        with open(self.path) as f:
            self.base = f.read()
        self.port = int(re.search(r'(?m)^listen = "127\.0\.0\.1:(\d+)"', self.base).group(1))

    def write(self, extra):
        """Writes the config with `extra` lines added to its [kme] table."""
        cfg, n = re.subn(r'(?m)^(id = "KME_A"\n)', r"\1" + extra.replace("\\", "\\\\") + r"\n", self.base, count=1)
        assert n == 1, "no [kme] id line in kme_a.toml"
        with open(self.path, "w") as f:
            f.write(cfg)


class DemoDir:
    """The two KMEs of a `demo --prepare-only` folder, addressed as "a" and "b": mTLS calls as an SAE
    and a wait until both answer Get status (KME_A can answer before KME_B listens)."""

    def __init__(self, d):
        self.d = d
        self.port = {k: int(re.search(r'(?m)^listen = "127\.0\.0\.1:(\d+)"', open(os.path.join(d, f"kme_{k}.toml")).read()).group(1))
                     for k in ("a", "b")}

    def conn(self, sae, k, timeout=15):
        ctx = ssl.create_default_context(cafile=os.path.join(self.d, "pki/ca.pem"))
        ctx.load_cert_chain(os.path.join(self.d, f"pki/{sae.lower()}.pem"), os.path.join(self.d, f"pki/{sae.lower()}.key"))
        return http.client.HTTPSConnection("127.0.0.1", self.port[k], context=ctx, timeout=timeout)

    def call(self, sae, k, method, path, body=None):
        h = self.conn(sae, k)
        h.request(method, path, body=None if body is None else json.dumps(body), headers={"Content-Type": "application/json"})
        r = h.getresponse()
        return r.status, json.loads(r.read() or b"null")

    def wait_up(self, kmes=("a", "b"), seconds=30):
        saes = {"a": ("SAE_A", "SAE_B"), "b": ("SAE_B", "SAE_A")}
        deadline = time.time() + seconds
        for k in kmes:
            sae, peer = saes[k]
            while True:
                try:
                    if self.call(sae, k, "GET", f"/api/v1/keys/{peer}/status")[0] == 200:
                        break
                except OSError:
                    pass
                if time.time() > deadline:
                    raise RuntimeError(f"KME_{k.upper()} did not start")
                time.sleep(0.05)
