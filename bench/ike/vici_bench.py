#!/usr/bin/env python3
"""Minimal strongSwan VICI client that drives charon as initiator in bench/ike (adapted from shared/tools/ike-peers).

Debian 12 ships no python vici binding, so this speaks the (simple) VICI wire
protocol itself: u32 length, u8 packet type, then for requests a u8-length
command name and a message of typed elements.  Each worker thread has its own
VICI connection and issues blocking 'initiate' requests for distinct
connections (=> distinct IKE SAs), so N workers keep N IKE setups in flight.

usage: vici_bench.py SOCKET PREFIX COUNT PARALLEL [--terminate]
  initiates PREFIX-0 .. PREFIX-(COUNT-1) (IKE + CHILD of the same name);
  prints one JSON object with wall time, rate and latency percentiles.
"""
import json, os, socket, struct, sys, threading, time

CMD_REQUEST, CMD_RESPONSE, CMD_UNKNOWN = 0, 1, 2
EVENT = 7
SECTION_START, SECTION_END, KEY_VALUE, LIST_START, LIST_ITEM, LIST_END = 1, 2, 3, 4, 5, 6


def encode(msg):
    out = b""
    for k, v in msg.items():
        k = k.encode()
        v = str(v).encode()
        out += struct.pack("!BB", KEY_VALUE, len(k)) + k + struct.pack("!H", len(v)) + v
    return out


def decode(data):
    res, stack, i = {}, [], 0
    cur = res
    while i < len(data):
        t = data[i]; i += 1
        if t == SECTION_START:
            n = data[i]; i += 1; name = data[i:i + n].decode(); i += n
            new = {}; cur[name] = new; stack.append(cur); cur = new
        elif t == SECTION_END:
            cur = stack.pop()
        elif t == KEY_VALUE:
            n = data[i]; i += 1; name = data[i:i + n].decode(); i += n
            (vl,) = struct.unpack("!H", data[i:i + 2]); i += 2
            cur[name] = data[i:i + vl].decode(errors="replace"); i += vl
        elif t == LIST_START:
            n = data[i]; i += 1; name = data[i:i + n].decode(); i += n
            lst = []; cur[name] = lst
        elif t == LIST_ITEM:
            (vl,) = struct.unpack("!H", data[i:i + 2]); i += 2
            lst.append(data[i:i + vl].decode(errors="replace")); i += vl
        elif t == LIST_END:
            pass
    return res


class Vici:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(path)

    def _recv(self, n):
        b = b""
        while len(b) < n:
            c = self.s.recv(n - len(b))
            if not c:
                raise EOFError("vici closed")
            b += c
        return b

    def request(self, cmd, msg):
        c = cmd.encode()
        body = struct.pack("!BB", CMD_REQUEST, len(c)) + c + encode(msg)
        self.s.sendall(struct.pack("!I", len(body)) + body)
        while True:
            (ln,) = struct.unpack("!I", self._recv(4))
            pkt = self._recv(ln)
            if pkt[0] == CMD_RESPONSE:
                return decode(pkt[1:])
            if pkt[0] == CMD_UNKNOWN:
                raise RuntimeError("unknown vici command " + cmd)
            # EVENT packets (not registered here) are skipped


def main():
    sock, prefix, count, par = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    terminate = "--terminate" in sys.argv
    lat, fails, lock = [], [], threading.Lock()
    nxt = iter(range(count))

    def worker():
        v = Vici(sock)
        while True:
            with lock:
                i = next(nxt, None)
            if i is None:
                return
            name = "%s-%d" % (prefix, i)
            t0 = time.perf_counter()
            r = v.request("initiate", {"ike": name, "child": name, "timeout": 0, "init-limits": "no", "loglevel": -1})
            dt = time.perf_counter() - t0
            with lock:
                (lat if r.get("success") == "yes" else fails).append(dt if r.get("success") == "yes" else r.get("errmsg", "?"))
            if terminate:
                v.request("terminate", {"ike": name, "timeout": 0, "loglevel": -1})

    t0 = time.perf_counter()
    th = [threading.Thread(target=worker) for _ in range(par)]
    [t.start() for t in th]
    [t.join() for t in th]
    wall = time.perf_counter() - t0
    lat.sort()
    pct = lambda p: round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1000, 2) if lat else None
    t = os.times()
    print(json.dumps({"client_cpu_s": round(t.user + t.system, 3), "count": count, "parallel": par, "ok": len(lat), "failed": len(fails),
                      "fail_sample": fails[:3], "wall_s": round(wall, 3),
                      "rate_per_s": round(len(lat) / wall, 1),
                      "lat_ms": {"min": pct(0), "p50": pct(0.5), "p90": pct(0.9), "p99": pct(0.99), "max": pct(1.0)}}))


if __name__ == "__main__":
    main()
