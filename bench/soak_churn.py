#!/usr/bin/env python3
"""Connection churn for bench/soak.sh: short-lived connections at a paced rate.

    python3 bench/soak_churn.py HOST:PORT RATE SECONDS STATS_FILE

Opens about RATE connections per second for SECONDS against an echo server,
in a mix: most send a message (16 B to 16 KiB), read the whole echo back,
check it and close (shutdown of the sending side, then end of input from the
server); one in 10 resets the connection in the middle of a message
(SO_LINGER 0); one in 20 connects and closes without sending. The source
address rotates over 127.1.0.0/16 so the closes' TIME_WAIT entries never
exhaust the ports of one address. Every 10 s it rewrites STATS_FILE with one
line: `connections errors mismatches p99_ms` (totals so far, and the p99 of
the connect-to-close time of the last 10 s). Exits 1 if any echo came back
wrong. Python 3 standard library only.
"""

import os
import random
import socket
import struct
import sys
import time

IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
TIMEOUT = 10.0  # seconds any one socket operation may take


def source(n):
    """The n-th source address in 127.1.0.0/16 (skipping .0 and .255)."""
    n %= 254 * 254
    return "127.1.%d.%d" % (n // 254 + 1, n % 254 + 1)


def one(addr, n, rng):
    """One connection; returns True when the echo came back as sent."""
    kind = n % 20
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        s.bind((source(n), 0))
        s.settimeout(TIMEOUT)
        s.connect(addr)
        if kind == 0:  # connect and go
            return True
        size = rng.choice((16, 64, 512, 4096, 16384))
        msg = os.urandom(size)
        if kind in (1, 2):  # reset mid-message
            s.sendall(msg[: size // 2])
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return True
        s.sendall(msg)
        s.shutdown(socket.SHUT_WR)
        got = bytearray()
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        return bytes(got) == msg
    finally:
        s.close()


def main():
    if len(sys.argv) != 5:
        sys.exit("usage: soak_churn.py HOST:PORT RATE SECONDS STATS_FILE")
    host, port = sys.argv[1].rsplit(":", 1)
    addr = (host, int(port))
    rate = float(sys.argv[2])
    seconds = float(sys.argv[3])
    stats_file = sys.argv[4]
    rng = random.Random(13)
    start = time.monotonic()
    end = start + seconds
    n = made = errors = mismatches = 0
    window = []
    next_report = start + 10
    while True:
        now = time.monotonic()
        if now >= end:
            break
        # Pacing: connection n is due at start + n / rate; never run ahead,
        # and when behind by over a second, skip ahead instead of bursting.
        due = start + n / rate
        if due > now:
            time.sleep(min(due - now, end - now))
            continue
        if now - due > 1.0:
            n = int((now - start) * rate)
        t0 = time.monotonic()
        try:
            if not one(addr, n, rng):
                mismatches += 1
        except OSError:
            errors += 1
        window.append(time.monotonic() - t0)
        n += 1
        made += 1
        if time.monotonic() >= next_report:
            window.sort()
            p99 = window[int(len(window) * 0.99)] * 1000 if window else 0.0
            tmp = stats_file + ".tmp"
            with open(tmp, "w") as f:
                f.write("%d %d %d %.3f\n" % (made, errors, mismatches, p99))
            os.replace(tmp, stats_file)
            window = []
            next_report += 10
    print("churn: %d connections, %d errors, %d wrong echoes" % (made, errors, mismatches))
    sys.exit(1 if mismatches else 0)


if __name__ == "__main__":
    main()
