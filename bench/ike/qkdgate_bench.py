#!/usr/bin/env python3
"""Drives qkdgated as IKE initiator for the setup-rate benchmark over its control socket.

usage: qkdgate_bench.py SOCKET PREFIX COUNT PARALLEL
Initiates gateways PREFIX-0 .. PREFIX-(COUNT-1) keeping PARALLEL setups in flight (an IKE SA
counts as done when it is Established with a child SA, or failed when it disappears), and prints
one JSON object: wall time, rate, latency percentiles.
"""
import json, os, socket, sys, time


class Ctl:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(path)
        self.buf = b""

    def call(self, req):
        self.s.sendall((json.dumps(req) + "\n").encode())
        while b"\n" not in self.buf:
            c = self.s.recv(1 << 20)
            if not c:
                raise EOFError("control socket closed")
            self.buf += c
        line, self.buf = self.buf.split(b"\n", 1)
        r = json.loads(line)
        if not r.get("ok"):
            raise RuntimeError(r.get("error"))
        return r.get("result")


def main():
    path, prefix, count, par = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    c = Ctl(path)
    pending, started, lat, failed = {}, 0, [], []
    t0 = time.perf_counter()
    deadline = t0 + 120
    while (started < count or pending) and time.perf_counter() < deadline:
        while started < count and len(pending) < par:
            name = "%s-%d" % (prefix, started)
            c.call({"cmd": "initiate", "gateway": name})
            pending[name] = time.perf_counter()
            started += 1
        time.sleep(0.02)
        state = {}
        for sa in c.call({"cmd": "show-ike-sa"}):
            if sa["gateway"] in pending:
                state[sa["gateway"]] = sa
        now = time.perf_counter()
        for name in list(pending):
            sa = state.get(name)
            if sa and sa["state"].upper() == "ESTABLISHED" and sa["child_sas"] > 0:
                lat.append(now - pending.pop(name))
            elif now - pending[name] > 10:
                failed.append(name)
                pending.pop(name)
    wall = time.perf_counter() - t0
    lat.sort()
    pct = lambda p: round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1000, 2) if lat else None
    t = os.times()
    print(json.dumps({"client_cpu_s": round(t.user + t.system, 3), "count": count, "parallel": par, "ok": len(lat),
                      "failed": len(failed) + len(pending), "wall_s": round(wall, 3), "rate_per_s": round(len(lat) / wall, 1),
                      "lat_ms": {"p50": pct(0.5), "p90": pct(0.9), "max": pct(1.0)}}))


if __name__ == "__main__":
    main()
