#!/usr/bin/env python3
"""Drives qkdgated as IKE initiator for the setup-rate benchmark over its control socket.

usage: qkdgate_bench.py SOCKET PREFIX COUNT PARALLEL [--poll SECONDS]
Initiates gateways PREFIX-0 .. PREFIX-(COUNT-1) keeping PARALLEL setups in flight and prints one
JSON object: wall time, rate, latency percentiles, the driver's own CPU.

Default: PARALLEL worker threads, each with its own control connection, each sending blocking
{"cmd": "initiate", "gateway": NAME, "wait": true} requests: qkdgated answers when the IKE SA and
its child SA are up (or failed), as charon's vici "initiate" does for vici_bench.py. qkdgated
then does the same control work per SA as charon: one request, one answer.

--poll SECONDS: the old driver (kept to measure the difference): initiate without waiting and
poll "show-ike-sa" every SECONDS. Each poll makes qkdgated list and encode every IKE SA, so its
CPU grows with COUNT and shows up as initiator CPU; the answer outgrows the control socket's
64 KiB line limit at about 150 IKE SAs.
"""
import json, os, socket, sys, threading, time

MAX_CONTROL_CLIENTS = 16  # qkdgated's kMaxControlClients: more connections are refused


class Ctl:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(path)
        self.buf = b""

    def request(self, req):
        """Sends one request and returns the whole answer {"ok": ..., "result"/"error": ...}."""
        self.s.sendall((json.dumps(req) + "\n").encode())
        while b"\n" not in self.buf:
            c = self.s.recv(1 << 20)
            if not c:
                raise EOFError("control socket closed")
            self.buf += c
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def call(self, req):
        r = self.request(req)
        if not r.get("ok"):
            raise RuntimeError(r.get("error"))
        return r.get("result")


def drive_wait(path, prefix, count, par):
    lat, fails, lock = [], [], threading.Lock()
    nxt = iter(range(count))

    def worker():
        c = Ctl(path)
        while True:
            with lock:
                i = next(nxt, None)
            if i is None:
                return
            t0 = time.perf_counter()
            r = c.request({"cmd": "initiate", "gateway": "%s-%d" % (prefix, i), "wait": True})
            dt = time.perf_counter() - t0
            with lock:
                if r.get("ok"):
                    lat.append(dt)
                else:
                    fails.append(r.get("error", "?"))

    th = [threading.Thread(target=worker) for _ in range(par)]
    [t.start() for t in th]
    [t.join() for t in th]
    return lat, fails


def drive_poll(path, prefix, count, par, interval):
    c = Ctl(path)
    pending, started, lat, failed = {}, 0, [], []
    deadline = time.perf_counter() + 120
    while (started < count or pending) and time.perf_counter() < deadline:
        while started < count and len(pending) < par:
            name = "%s-%d" % (prefix, started)
            c.call({"cmd": "initiate", "gateway": name})
            pending[name] = time.perf_counter()
            started += 1
        time.sleep(interval)
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
                failed.append(name + ": no IKE SA with a child SA after 10 s")
                pending.pop(name)
    failed += [n + ": still pending" for n in pending]
    return lat, failed


def main():
    args = sys.argv[1:]
    poll = None
    if "--poll" in args:
        i = args.index("--poll")
        poll = float(args[i + 1])
        del args[i:i + 2]
    path, prefix, count, par = args[0], args[1], int(args[2]), int(args[3])
    if poll is None and par > MAX_CONTROL_CLIENTS:
        sys.exit("PARALLEL %d: qkdgated serves at most %d control connections" % (par, MAX_CONTROL_CLIENTS))
    t0 = time.perf_counter()
    lat, fails = drive_wait(path, prefix, count, par) if poll is None else drive_poll(path, prefix, count, par, poll)
    wall = time.perf_counter() - t0
    lat.sort()
    pct = lambda p: round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1000, 2) if lat else None
    t = os.times()
    print(json.dumps({"driver": "wait" if poll is None else "poll %gs" % poll, "client_cpu_s": round(t.user + t.system, 3),
                      "count": count, "parallel": par, "ok": len(lat), "failed": len(fails), "fail_sample": fails[:3],
                      "wall_s": round(wall, 3), "rate_per_s": round(len(lat) / wall, 1),
                      "lat_ms": {"min": pct(0), "p50": pct(0.5), "p90": pct(0.9), "p99": pct(0.99), "max": pct(1.0)}}))


if __name__ == "__main__":
    main()
