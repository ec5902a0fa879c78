"""Starts a program as systemd socket activation would, with LISTEN_PID set
to its own pid (exec keeps it) and descriptor 3 being KIND:

  tcp-listening, tcp-not-listening, udp, file or none (closed)

Usage: exec_with_fd3.py KIND PROGRAM ARGS...   (LISTEN_FDS comes from the
environment). Used by tests/socket_activation_errors.rs.
"""

import fcntl
import os
import socket
import sys

kind, program = sys.argv[1], sys.argv[2:]
keep = []  # sockets stay open until exec
if kind == "tcp-listening":
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    keep.append(s)
elif kind == "tcp-not-listening":
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    keep.append(s)
elif kind == "udp":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    keep.append(s)
elif kind == "file":
    keep.append(open(sys.executable, "rb"))
elif kind != "none":
    sys.exit(f"unknown kind {kind}")

# Out of the way of 3 and 4 first, then onto 3 (inheritable); 4 is closed.
high = fcntl.fcntl(keep[0].fileno(), fcntl.F_DUPFD, 10) if keep else None
for obj in keep:
    obj.close()
for fd in (3, 4):
    try:
        os.close(fd)
    except OSError:
        pass
if high is not None:
    os.dup2(high, 3)
    os.close(high)
os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(program[0], program)
