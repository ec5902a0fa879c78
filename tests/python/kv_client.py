"""redis-py against the kv example (tests/kv_clients.rs runs it).

Usage: python3 kv_client.py HOST PORT

A connection pool shared by threads, a transactional pipeline (MULTI/EXEC,
redis-py's default), a non-transactional one, replies as redis-py decodes
them, and errors as redis-py raises them. Prints "ok NAME" per check and
"all N checks passed" at the end; exits 1 at the first mismatch.
"""

import sys
import threading

import redis

host, port = sys.argv[1], int(sys.argv[2])
# Blocking: a thread waits (up to 10 s) for one of the 4 connections.
pool = redis.BlockingConnectionPool(
    host=host, port=port, max_connections=4, timeout=10, socket_timeout=10
)
r = redis.Redis(connection_pool=pool)
passed = 0


def check(name, got, want):
    global passed
    if got != want:
        print(f"FAIL {name}: got {got!r}, want {want!r}")
        sys.exit(1)
    passed += 1
    print(f"ok {name}")


def error_of(call):
    try:
        call()
    except redis.ResponseError as e:
        return str(e)
    return None


r.flushall()
check("ping", r.ping(), True)
check("echo", r.echo("hi"), b"hi")
check("set", r.set("k", "v"), True)
check("get", r.get("k"), b"v")
check("get missing", r.get("missing"), None)
check("set nx on an existing key", r.set("k", "x", nx=True), None)
check("set xx", r.set("k", "w", xx=True), True)
check("set ex", r.set("t", "1", ex=100), True)
check("ttl", r.ttl("t"), 100)
check("set px", r.set("p", "1", px=100_000), True)
check("ttl of px", r.ttl("p"), 100)
check("incr", r.incr("n"), 1)
check("incrby", r.incrby("n", 41), 42)
check("decr", r.decr("n"), 41)
check("decrby", r.decrby("n", 40), 1)
check("mset", r.mset({"a": "1", "b": "2"}), True)
check("mget", r.mget("a", "b", "zz"), [b"1", b"2", None])
check("exists", r.exists("a", "b", "zz"), 2)
check("delete", r.delete("a", "zz"), 1)
check("expire", r.expire("b", 50), True)
check("ttl after expire", r.ttl("b"), 50)
check("expire missing", r.expire("zz", 50), False)
check("incr error", error_of(lambda: r.incr("k")), "value is not an integer or out of range")
check(
    "unknown command",
    error_of(lambda: r.execute_command("NOPE", "x")),
    "unknown command 'NOPE', with args beginning with: 'x' ",
)

with r.pipeline(transaction=True) as p:
    p.set("tx", "1").incr("tx").incrby("tx", 10).get("tx")
    check("transactional pipeline", p.execute(), [True, 2, 12, b"12"])

with r.pipeline(transaction=True) as p:
    p.set("e", "x").incr("e").get("e")
    results = p.execute(raise_on_error=False)
    check("transaction with a failing command", [results[0], results[2]], [True, b"x"])
    check("its error", str(results[1]), "value is not an integer or out of range")

with r.pipeline(transaction=False) as p:
    for i in range(1000):
        p.set(f"p{i}", i)
    check("non-transactional pipeline of SETs", p.execute(), [True] * 1000)

with r.pipeline(transaction=False) as p:
    for i in range(1000):
        p.get(f"p{i}")
    check("non-transactional pipeline of GETs", p.execute(), [str(i).encode() for i in range(1000)])


failures = []


def worker():
    try:
        for _ in range(250):
            r.incr("shared")
    except Exception as e:  # reported below, in the main thread
        failures.append(repr(e))


threads = [threading.Thread(target=worker) for _ in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
check("8 threads through a pool of 4 connections", (failures, r.get("shared")), ([], b"2000"))

check("dbsize", r.dbsize(), 1000 + 8)
check("flushall", r.flushall(), True)
check("dbsize after flushall", r.dbsize(), 0)
pool.disconnect()
print(f"all {passed} checks passed")
