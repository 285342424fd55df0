#!/usr/bin/env python3
# Connects from SRC to DST:PORT, sends MB megabytes of random data, prints "<bytes> <sha256> <Mbit/s>".
import hashlib, os, socket, sys, time
src, dst, port, mb = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
s = socket.socket()
s.bind((src, 0))
s.settimeout(60)
s.connect((dst, port))
h, n = hashlib.sha256(), 0
chunk = os.urandom(1 << 20)
t0 = time.time()
for i in range(mb):
    block = bytes([i & 255]) + chunk[1:]
    s.sendall(block)
    h.update(block)
    n += len(block)
s.shutdown(socket.SHUT_WR)
s.recv(1)
dt = time.time() - t0
print(n, h.hexdigest(), "%.0f" % (n * 8 / dt / 1e6))
