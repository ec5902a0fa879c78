#!/usr/bin/env python3
"""A minimal socket-activation supervisor for tests/socket_activation.rs.

Run under `systemd-socket-activate -l ADDR [-l ADDR2]`, which passes the
listening sockets as descriptors 3 (and 4) to this process only. The
supervisor keeps them open and starts the server command twice in a row,
passing the sockets on each time with LISTEN_FDS and LISTEN_PID set to the
child's own pid (set in the child between fork and exec: the pid is not
known before the fork).

Usage: supervisor.py LOG_A LOG_B -- COMMAND...

Protocol on stdin/stdout, one line each:
  prints  "started A <pid>"        once the first child runs
  reads   "restart"                then sends SIGTERM to A and at once starts B
  prints  "started B <pid>"
  reads   "stop"                   then sends SIGTERM to B
  prints  "exited A <code>" and "exited B <code>" once both have exited
Each child's stderr goes to its log file. Every wait is bounded: a child
that has not exited 20 s after its SIGTERM is killed (and reported as -9).
"""

import os
import signal
import sys
import time


def start(command, log_path, fds):
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    pid = os.fork()
    if pid == 0:
        try:
            os.dup2(log, 2)
            env = dict(os.environ)
            env["LISTEN_FDS"] = str(fds)
            env["LISTEN_PID"] = str(os.getpid())
            env.pop("LISTEN_FDNAMES", None)
            os.execve(command[0], command, env)
        finally:
            os._exit(127)
    os.close(log)
    return pid


def wait_exit(pid, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return -9


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main():
    args = sys.argv[1:]
    if len(args) < 4 or args[2] != "--":
        sys.exit("usage: supervisor.py LOG_A LOG_B -- COMMAND...")
    log_a, log_b, command = args[0], args[1], args[3:]
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        sys.exit("supervisor: not started by socket activation (LISTEN_PID)")
    fds = int(os.environ.get("LISTEN_FDS", "0"))
    if fds < 1:
        sys.exit("supervisor: no socket passed (LISTEN_FDS)")
    for fd in range(3, 3 + fds):
        os.set_inheritable(fd, True)
    # The supervisor's own copies stay open to the end: the sockets outlive
    # each child, as systemd's do.
    a = start(command, log_a, fds)
    b = None
    say(f"started A {a}")
    codes = {}
    for line in sys.stdin:
        word = line.strip()
        if word == "restart":
            os.kill(a, signal.SIGTERM)
            b = start(command, log_b, fds)
            say(f"started B {b}")
        elif word == "stop" and b is not None:
            os.kill(b, signal.SIGTERM)
            codes["A"] = wait_exit(a, 20)
            codes["B"] = wait_exit(b, 20)
            break
    else:
        # stdin closed early: stop whatever runs.
        for pid in (a, b):
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
        sys.exit("supervisor: stdin closed before 'stop'")
    say(f"exited A {codes['A']}")
    say(f"exited B {codes['B']}")


if __name__ == "__main__":
    main()
