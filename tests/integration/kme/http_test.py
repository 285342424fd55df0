#!/usr/bin/env python3
"""The KME's HTTP/1.1 layer over real mutual TLS, with hand-written bytes on raw `ssl` sockets:
pipelining, Expect: 100-continue, chunked bodies, the 400/413/431 answers and the connection
closed after them, HTTP/1.0, Connection: close, and the idle timeout (kme.request_timeout) after
a response, during a request and during the TLS handshake."""
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from kmetest import Checks, Demo  # noqa: E402

BIN = sys.argv[1]
c = Checks()

CLOSED_ERRORS = (ConnectionResetError, BrokenPipeError, ssl.SSLEOFError, ssl.SSLZeroReturnError)


class Closed(Exception):
    """The server closed the connection before a complete response."""


class Response:
    def __init__(self, version, status, reason, headers, body, raw):
        self.version, self.status, self.reason = version, status, reason
        self.headers = headers  # lower-case name -> value (last one wins)
        self.body, self.raw = body, raw

    def header(self, name):
        return self.headers.get(name.lower())

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def __repr__(self):
        return repr(self.raw[:300])


class Conn:
    """One connection to a KME; reads responses as RFC 9112 says: status line, fields, then a
    body of Content-Length bytes (or up to the end of the connection without one)."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.eof = False

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def _fill(self):
        if self.eof:
            raise Closed()
        try:
            chunk = self.sock.recv(65536)
        except CLOSED_ERRORS:
            chunk = b""
        if not chunk:
            self.eof = True
            raise Closed()
        self.buf += chunk

    def read_response(self):
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        m = re.fullmatch(r"HTTP/(1\.[01]) (\d{3}) ?(.*)", lines[0])
        if not m:
            raise ValueError(f"bad status line {lines[0]!r}")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        status = int(m.group(2))
        body = b""
        if status >= 200 and status not in (204, 304):
            if "content-length" in headers:
                n = int(headers["content-length"])
                while len(self.buf) < n:
                    self._fill()
                body, self.buf = self.buf[:n], self.buf[n:]
            else:
                try:
                    while True:
                        self._fill()
                except Closed:
                    body, self.buf = self.buf, b""
        return Response(m.group(1), status, m.group(3), headers, body, head + b"\r\n\r\n" + body)

    def closed_within(self, seconds):
        """Seconds until the server closed the connection, or None if it did not within `seconds`
        (bytes that arrive meanwhile are kept in self.buf)."""
        t0 = time.monotonic()
        while True:
            left = seconds - (time.monotonic() - t0)
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                self._fill()
            except Closed:
                return time.monotonic() - t0
            except socket.timeout:
                return None
            finally:
                self.sock.settimeout(10)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def tls_context(ca, cert=None, key=None):
    ctx = ssl.create_default_context(cafile=ca)
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


def open_tls(ctx, port):
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return Conn(ctx.wrap_socket(raw, server_hostname="127.0.0.1"))


def req(method, target, headers=(), body=b"", version="1.1", host=True):
    lines = [f"{method} {target} HTTP/{version}"]
    if host:
        lines.append("Host: kme-a")
    lines += list(headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def checked(what, fn):
    """Runs one scenario; a Closed or socket error counts as a failed check, not a crash."""
    try:
        fn()
    except (Closed, OSError, ValueError) as e:
        c.true(what, False, f"raised {type(e).__name__}: {e}")


STATUS = "/api/v1/keys/SAE_B/status"
ENC = "/api/v1/keys/SAE_B/enc_keys"


# ---- Against the demo (kme.request_timeout = 10 s, max_body_bytes = 65536) --------------------
demo = Demo(BIN)
try:
    ca = demo.path(demo.info["ca"])
    sae_a = demo.saes["SAE_A"]
    ctx = tls_context(ca, demo.path(sae_a["cert"]), demo.path(sae_a["key"]))
    port = int(demo.urls["KME_A"].rsplit(":", 1)[1])

    def pipelined():
        conn = open_tls(ctx, port)
        sent = req("GET", STATUS) * 2
        conn.send(sent)  # one write: both requests in one TLS record
        r1, r2 = conn.read_response(), conn.read_response()
        c.eq("pipelined: first response", (r1.status, (r1.json() or {}).get("slave_SAE_ID")), (200, "SAE_B"))
        c.eq("pipelined: second response", (r2.status, (r2.json() or {}).get("slave_SAE_ID")), (200, "SAE_B"))
        # Three different requests at once: the answers come in request order.
        conn.send(req("GET", "/api/v1/keys/SAE_C/status") + req("GET", "/api/v2/nothing") + req("GET", STATUS))
        got = [conn.read_response() for _ in range(3)]
        c.eq("pipelined: responses in request order",
             [(r.status, (r.json() or {}).get("slave_SAE_ID")) for r in got], [(200, "SAE_C"), (404, None), (200, "SAE_B")])
        # A POST with its body between two GETs, all in one write.
        conn.send(req("GET", STATUS) + req("POST", ENC, ["Content-Type: application/json", "Content-Length: 12"], b'{"number":3}')
                  + req("GET", "/api/v1/keys/SAE_C/status"))
        got = [conn.read_response() for _ in range(3)]
        c.eq("pipelined: GET, POST with body, GET",
             [got[0].status, got[1].status, len((got[1].json() or {}).get("keys", [])), (got[2].json() or {}).get("slave_SAE_ID")],
             [200, 200, 3, "SAE_C"])
        c.eq("pipelined: nothing more than the responses", conn.buf, b"")
        conn.close()

    def expect_continue():
        conn = open_tls(ctx, port)
        conn.send(req("POST", ENC, ["Content-Type: application/json", "Content-Length: 12", "Expect: 100-continue"]))
        interim = conn.read_response()
        c.eq("100-continue: interim response", interim.raw, b"HTTP/1.1 100 Continue\r\n\r\n")
        c.eq("100-continue: nothing else before the body", conn.closed_within(0.3), None)
        c.eq("100-continue: no final response before the body", conn.buf, b"")
        conn.send(b'{"number":2}')
        r = conn.read_response()
        body = r.json() or {}
        c.eq("100-continue: final response", (r.status, len(body.get("keys", []))), (200, 2))
        # The connection goes on: a second request with Expect gets its own 100 Continue.
        conn.send(req("POST", ENC, ["Content-Length: 2", "Expect: 100-continue"]))
        c.eq("100-continue: again on the same connection", conn.read_response().status, 100)
        conn.send(b"{}")
        c.eq("100-continue: second final response", conn.read_response().status, 200)
        # With the body sent at once, no 100 Continue: straight to the final response.
        conn.send(req("POST", ENC, ["Content-Length: 2", "Expect: 100-continue"], b"{}"))
        c.eq("100-continue: body already sent -> no interim response", conn.read_response().status, 200)
        conn.close()

    def chunked():
        # Chunked request bodies are decoded (RFC 9112 7.1), extensions and trailers included, and
        # the connection goes on.
        conn = open_tls(ctx, port)
        conn.send(req("POST", ENC, ["Content-Type: application/json", "Transfer-Encoding: chunked"]) +
                  b'5\r\n{"num\r\n7;ext=1\r\nber":3}\r\n0\r\nX-Trailer: t\r\n\r\n')
        r = conn.read_response()
        c.eq("chunked POST: answered with the keys the body asked for", (r.status, len((r.json() or {}).get("keys", []))), (200, 3))
        # Sent in pieces, behind 100-continue, then a pipelined GET.
        conn.send(req("POST", ENC, ["Transfer-Encoding: chunked", "Expect: 100-continue"]))
        c.eq("chunked POST: 100 Continue", conn.read_response().status, 100)
        for piece in (b"c\r\n", b'{"number":2}', b"\r\n", b"0\r\n", b"\r\n" + req("GET", STATUS)):
            conn.send(piece)
            time.sleep(0.02)
        r1, r2 = conn.read_response(), conn.read_response()
        c.eq("chunked POST in pieces, then a pipelined GET",
             [r1.status, len((r1.json() or {}).get("keys", [])), r2.status], [200, 2, 200])
        conn.close()
        expect_error_and_close("chunked POST with a bare LF", req("POST", ENC, ["Transfer-Encoding: chunked"]) +
                               b'2\n{}\r\n0\r\n\r\n', 400)
        expect_error_and_close("chunked POST over max_body_bytes",
                               req("POST", ENC, ["Transfer-Encoding: chunked"]) + b"10001\r\n", 413)

    def expect_error_and_close(what, sent, status, message=None, prefix=None):
        conn = open_tls(ctx, port)
        conn.send(sent)
        try:
            r = conn.read_response()
        except Closed:
            c.true(f"{what}: {status} response", False, f"connection closed without a response; sent {sent[:120]!r}...")
            return
        body = r.json() or {}
        if r.status != status:  # one failure, with what came back, rather than one per header
            c.eq(f"{what}: status (sent {len(sent)} bytes: {sent[:80]!r}...; got {r!r})", r.status, status)
            conn.close()
            return
        c.eq(f"{what}: status", r.status, status)
        if message is not None:
            c.eq(f"{what}: message", body.get("message"), message)
        if prefix is not None:
            c.true(f"{what}: JSON message", str(body.get("message", "")).startswith(prefix), f"got {r!r}")
        c.eq(f"{what}: Content-Type", r.header("Content-Type"), "application/json")
        c.eq(f"{what}: Connection: close", r.header("Connection"), "close")
        closed = conn.closed_within(3)
        c.true(f"{what}: connection closed", closed is not None, f"still open 3 s after {r.status}; more bytes: {conn.buf[:200]!r}")
        conn.close()

    def header_431():
        sent = req("GET", STATUS, ["X-Pad: " + "a" * 10000])
        c.true("431 request is over 10000 bytes", len(sent) > 10000)
        expect_error_and_close("10000-byte header", sent, 431, "request header exceeds 8192 bytes")

    def header_431_split():
        # 5000 bytes of request target and 5000 bytes of fields: a 10 KB header all the same.
        sent = req("GET", "/api/v1/keys/SAE_B/status?pad=" + "p" * 5000, ["X-Pad: " + "a" * 5000])
        expect_error_and_close("5000-byte request line + 5000 bytes of fields", sent, 431, "request header exceeds 8192 bytes")

    def malformed():
        expect_error_and_close("malformed request line", b"THIS IS NOT HTTP\r\n\r\n" + req("GET", STATUS), 400,
                               prefix="malformed HTTP/1.1 request")
        expect_error_and_close("unsupported HTTP version", b"GET " + STATUS.encode() + b" HTTP/2.0\r\nHost: kme-a\r\n\r\n", 400,
                               prefix="malformed HTTP/1.1 request")

    def body_413():
        # Only the header: the KME must refuse on Content-Length alone, without reading the body.
        expect_error_and_close("Content-Length 100000", req("POST", ENC, ["Content-Type: application/json", "Content-Length: 100000"]),
                               413, "request body exceeds 65536 bytes")

    def http10():
        conn = open_tls(ctx, port)
        conn.send(req("GET", STATUS, version="1.0", host=False))
        r = conn.read_response()
        c.eq("HTTP/1.0: status line", r.raw.split(b"\r\n", 1)[0], b"HTTP/1.0 200 OK")
        c.eq("HTTP/1.0: body", (r.json() or {}).get("slave_SAE_ID"), "SAE_B")
        c.true("HTTP/1.0: connection closed after the response", conn.closed_within(3) is not None, f"buffered {conn.buf!r}")
        conn.close()
        conn = open_tls(ctx, port)
        conn.send(req("GET", STATUS, ["Connection: keep-alive"], version="1.0"))
        r = conn.read_response()
        c.eq("HTTP/1.0 keep-alive: status and Connection", (r.version, r.status, r.header("Connection")), ("1.0", 200, "keep-alive"))
        conn.send(req("GET", "/api/v1/keys/SAE_C/status", ["Connection: keep-alive"], version="1.0"))
        r = conn.read_response()
        c.eq("HTTP/1.0 keep-alive: second request", (r.version, r.status, (r.json() or {}).get("slave_SAE_ID")), ("1.0", 200, "SAE_C"))
        conn.send(req("GET", STATUS, version="1.0"))
        r = conn.read_response()
        c.eq("HTTP/1.0 keep-alive: third request without it", r.status, 200)
        c.true("HTTP/1.0 keep-alive: closed after the request without it", conn.closed_within(3) is not None)
        conn.close()

    def connection_close():
        conn = open_tls(ctx, port)
        # A second request after "Connection: close" is not answered.
        conn.send(req("GET", STATUS, ["Connection: close"]) + req("GET", STATUS))
        r = conn.read_response()
        c.eq("Connection: close: response", (r.status, r.header("Connection")), (200, "close"))
        c.true("Connection: close: connection closed", conn.closed_within(3) is not None, f"buffered {conn.buf[:200]!r}")
        c.eq("Connection: close: the pipelined request after it is not answered", conn.buf, b"")
        conn.close()

    def mtls_mandatory():
        conn = None
        try:
            conn = open_tls(tls_context(ca), port)
            conn.send(req("GET", STATUS))
            r = conn.read_response()
            c.true("no client certificate: no HTTP response", False, f"got {r!r}")
        except (Closed, ssl.SSLError, OSError):
            c.true("no client certificate: no HTTP response", True)
        finally:
            if conn:
                conn.close()

    def request_then_close_notify():
        # The request and the client's close_notify in one write (a client that half-closes): the
        # request is still answered, then the server closes too.
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        inc, outg = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = ctx.wrap_bio(inc, outg, server_hostname="127.0.0.1")

        def pump():
            data = raw.recv(65536)
            if not data:
                inc.write_eof()
            else:
                inc.write(data)
            return data

        while True:
            try:
                obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                raw.sendall(outg.read())
                pump()
        raw.sendall(outg.read())
        obj.write(req("GET", STATUS))
        try:
            obj.unwrap()
        except ssl.SSLWantReadError:
            pass
        raw.sendall(outg.read())  # request and close_notify together
        got = b""
        while True:
            try:
                chunk = obj.read(65536)
                if not chunk:
                    break
                got += chunk
            except ssl.SSLWantReadError:
                if not pump():
                    break
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                break
        raw.close()
        c.true("request + close_notify in one flight: answered", got.startswith(b"HTTP/1.1 200 "), repr(got[:80]))

    for name, fn in [("request then close_notify", request_then_close_notify), ("pipelining", pipelined), ("100-continue", expect_continue), ("chunked", chunked), ("431", header_431),
                     ("431 split", header_431_split), ("400", malformed), ("413", body_413), ("HTTP/1.0", http10),
                     ("Connection: close", connection_close), ("mTLS", mtls_mandatory)]:
        checked(name, fn)
    # The demo still serves after all of the above.
    conn = open_tls(ctx, port)
    conn.send(req("GET", STATUS))
    c.eq("still serving", conn.read_response().status, 200)
    conn.close()
finally:
    rc = demo.stop()
c.eq("demo exit code after SIGTERM", rc, 0)


# ---- KME_A alone with kme.request_timeout = 1 s ---------------------------------------------
d = tempfile.mkdtemp(prefix="qkd-kme-http-")
subprocess.run([BIN, "demo", d, "--prepare-only", "--log-level", "warn"], check=True, stdout=subprocess.DEVNULL)
cfg_path = os.path.join(d, "kme_a.toml")
with open(cfg_path) as f:
    cfg = f.read()
cfg, n = re.subn(r'(?m)^(id = "KME_A"\n)', r"\1request_timeout = 1\n", cfg, count=1)
assert n == 1, "no [kme] id line in kme_a.toml"
with open(cfg_path, "w") as f:
    f.write(cfg)
tport = int(re.search(r'(?m)^listen = "127\.0\.0\.1:(\d+)"', cfg).group(1))
log = open(os.path.join(d, "kme_a.log"), "w+")
proc = subprocess.Popen([BIN, "serve", "-c", cfg_path], stdout=log, stderr=subprocess.STDOUT)
try:
    tctx = tls_context(os.path.join(d, "pki/ca.pem"), os.path.join(d, "pki/sae_a.pem"), os.path.join(d, "pki/sae_a.key"))
    deadline = time.time() + 30
    while True:
        try:
            open_tls(tctx, tport).close()
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                log.seek(0)
                raise RuntimeError("KME_A did not start: " + log.read())
            time.sleep(0.05)

    LOW, HIGH = 0.5, 5.0

    def in_window(what, took):
        print(f"{what}: " + ("still open after 5 s" if took is None else f"closed after {took:.2f} s"))
        c.true(what, took is not None and LOW <= took <= HIGH,
               "still open after 5 s" if took is None else f"closed after {took:.2f} s")

    def idle_after_handshake():
        conn = open_tls(tctx, tport)  # the handshake is complete when this returns
        in_window("idle after the TLS handshake: closed after request_timeout", conn.closed_within(HIGH + 1))
        conn.close()

    def idle_after_response():
        conn = open_tls(tctx, tport)
        conn.send(req("GET", STATUS))
        r = conn.read_response()
        c.eq("timeout server answers", r.status, 200)
        in_window("idle keep-alive connection: closed after request_timeout", conn.closed_within(HIGH + 1))
        conn.close()

    def busy_connection_stays():
        # The timeout is per request, not per connection: requests 0.6 s apart keep it open.
        conn = open_tls(tctx, tport)
        got = []
        for _ in range(4):
            conn.send(req("GET", "/api/v2/nothing"))
            got.append(conn.read_response().status)
            time.sleep(0.6)
        c.eq("requests 0.6 s apart on one connection (2.4 s in all)", got, [404] * 4)
        conn.close()

    def unfinished_request():
        conn = open_tls(tctx, tport)
        conn.send(b"GET " + STATUS.encode() + b" HTTP/1.1\r\nHost: kme-a\r\n")
        in_window("unfinished request header: closed after request_timeout", conn.closed_within(HIGH + 1))
        conn.close()

    def body_never_sent():
        # 100 Continue, and then the client sends nothing.
        conn = open_tls(tctx, tport)
        conn.send(req("POST", ENC, ["Content-Length: 12", "Expect: 100-continue"]))
        c.eq("timeout server: 100 Continue", conn.read_response().status, 100)
        in_window("body never sent after 100 Continue: closed after request_timeout", conn.closed_within(HIGH + 1))
        conn.close()

    def dribbled_request():
        # One header byte every 0.2 s: the timeout bounds the whole request, not the gap between bytes.
        conn = open_tls(tctx, tport)
        t0 = time.monotonic()
        took = None
        for ch in b"GET " + STATUS.encode() + b" HTTP/1.1\r\nX-Slow: " + b"s" * 100:
            try:
                conn.send(bytes([ch]))
            except CLOSED_ERRORS:
                took = time.monotonic() - t0
                break
            if conn.closed_within(0.2) is not None:
                took = time.monotonic() - t0
                break
            if time.monotonic() - t0 > HIGH:
                break
        in_window("request dribbled byte by byte: closed after request_timeout", took)
        conn.close()

    def silent_during_handshake():
        raw = socket.create_connection(("127.0.0.1", tport), timeout=10)
        conn = Conn(raw)  # no ClientHello
        in_window("silent client during the TLS handshake: dropped after request_timeout", conn.closed_within(HIGH + 1))
        conn.close()

    def half_handshake():
        # A ClientHello and then nothing: the server waits for the client's second flight.
        raw = socket.create_connection(("127.0.0.1", tport), timeout=10)
        inc, outc = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = tctx.wrap_bio(inc, outc, server_hostname="127.0.0.1")
        try:
            obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        raw.sendall(outc.read())
        in_window("client stalled inside the TLS handshake: dropped after request_timeout", Conn(raw).closed_within(HIGH + 1))
        raw.close()

    for name, fn in [("idle after handshake", idle_after_handshake), ("idle after response", idle_after_response),
                     ("busy connection", busy_connection_stays), ("unfinished request", unfinished_request),
                     ("body never sent", body_never_sent),
                     ("dribbled request", dribbled_request), ("silent handshake", silent_during_handshake),
                     ("half handshake", half_handshake)]:
        checked(name, fn)
finally:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
c.eq("KME_A exit code after SIGTERM", proc.returncode, 0)
if c.failed:
    log.seek(0)
    print("KME_A log (request_timeout = 1):\n" + log.read()[-5000:])
sys.exit(c.done())
