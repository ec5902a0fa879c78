//! The `kv` example's expected replies (`tests/kv_example.rs`): requests
//! and the exact bytes redis-server 7.0.15 answers them with, captured from
//! it, in order on one connection (each depends on the ones before).
//!
//! Declare it with `#[path = "support/kv_exchanges.rs"] mod kv_exchanges;`.

/// Requests (inline) and the exact replies redis-server 7.0 gives them, in
/// order on one connection.
pub const EXCHANGES: &[(&str, &str)] = &[
    ("PING", "+PONG\r\n"),
    ("PING hello", "$5\r\nhello\r\n"),
    ("ping", "+PONG\r\n"),
    (
        "PING a b",
        "-ERR wrong number of arguments for 'ping' command\r\n",
    ),
    (
        "ECHO",
        "-ERR wrong number of arguments for 'echo' command\r\n",
    ),
    ("ECHO x", "$1\r\nx\r\n"),
    ("SET k v", "+OK\r\n"),
    ("GET k", "$1\r\nv\r\n"),
    ("GET nokey", "$-1\r\n"),
    ("INCR k", "-ERR value is not an integer or out of range\r\n"),
    ("SET n 10", "+OK\r\n"),
    ("INCR n", ":11\r\n"),
    ("INCRBY n 5", ":16\r\n"),
    (
        "INCRBY n x",
        "-ERR value is not an integer or out of range\r\n",
    ),
    ("DECR n", ":15\r\n"),
    ("DECRBY n 3", ":12\r\n"),
    (
        "DECRBY n -9223372036854775808",
        "-ERR decrement would overflow\r\n",
    ),
    ("SET big 9223372036854775807", "+OK\r\n"),
    ("INCR big", "-ERR increment or decrement would overflow\r\n"),
    ("SET z 010", "+OK\r\n"),
    ("INCR z", "-ERR value is not an integer or out of range\r\n"),
    ("SET z -0", "+OK\r\n"),
    ("INCR z", "-ERR value is not an integer or out of range\r\n"),
    ("INCR newc", ":1\r\n"),
    ("INCRBY newc2 -7", ":-7\r\n"),
    ("MGET k n x", "*3\r\n$1\r\nv\r\n$2\r\n12\r\n$-1\r\n"),
    ("MSET a 1 b 2", "+OK\r\n"),
    (
        "MSET a 1 b",
        "-ERR wrong number of arguments for 'mset' command\r\n",
    ),
    (
        "MGET",
        "-ERR wrong number of arguments for 'mget' command\r\n",
    ),
    ("DBSIZE", ":8\r\n"),
    (
        "DBSIZE x",
        "-ERR wrong number of arguments for 'dbsize' command\r\n",
    ),
    ("EXPIRE a 100", ":1\r\n"),
    ("TTL a", ":100\r\n"),
    ("TTL b", ":-1\r\n"),
    ("TTL zz", ":-2\r\n"),
    ("EXPIRE zz 10", ":0\r\n"),
    (
        "EXPIRE a x",
        "-ERR value is not an integer or out of range\r\n",
    ),
    (
        "EXPIRE a 9223372036854775807",
        "-ERR invalid expire time in 'expire' command\r\n",
    ),
    ("EXPIRE b -1", ":1\r\n"),
    ("EXISTS b", ":0\r\n"),
    ("DEL a b zz", ":1\r\n"),
    ("EXISTS k n k", ":3\r\n"),
    (
        "DEL",
        "-ERR wrong number of arguments for 'del' command\r\n",
    ),
    (
        "EXISTS",
        "-ERR wrong number of arguments for 'exists' command\r\n",
    ),
    (
        "FOO bar baz",
        "-ERR unknown command 'FOO', with args beginning with: 'bar' 'baz' \r\n",
    ),
    (
        "foo",
        "-ERR unknown command 'foo', with args beginning with: \r\n",
    ),
    (
        "GET",
        "-ERR wrong number of arguments for 'get' command\r\n",
    ),
    (
        "get a b",
        "-ERR wrong number of arguments for 'get' command\r\n",
    ),
    (
        "CONFIG",
        "-ERR wrong number of arguments for 'config' command\r\n",
    ),
    (
        "CONFIG GET",
        "-ERR wrong number of arguments for 'config|get' command\r\n",
    ),
    (
        "CONFIG SETX a",
        "-ERR unknown subcommand 'SETX'. Try CONFIG HELP.\r\n",
    ),
    (
        "SET k v EX 0",
        "-ERR invalid expire time in 'set' command\r\n",
    ),
    (
        "SET k v EX -1",
        "-ERR invalid expire time in 'set' command\r\n",
    ),
    (
        "SET k v EX x",
        "-ERR value is not an integer or out of range\r\n",
    ),
    ("SET k v PX 100 EX 10", "-ERR syntax error\r\n"),
    ("SET k v NX XX", "-ERR syntax error\r\n"),
    ("SET k v EX", "-ERR syntax error\r\n"),
    ("SET k v FOO", "-ERR syntax error\r\n"),
    ("SET k v NX", "$-1\r\n"),
    ("SET q v XX", "$-1\r\n"),
    ("SET q v NX", "+OK\r\n"),
    ("SET k v2 XX EX 5000", "+OK\r\n"),
    ("TTL k", ":5000\r\n"),
    ("GET k", "$2\r\nv2\r\n"),
    (
        "SET k v EX 9223372036854775807",
        "-ERR invalid expire time in 'set' command\r\n",
    ),
    ("SET k v", "+OK\r\n"),
    ("TTL k", ":-1\r\n"),
    ("MULTI", "+OK\r\n"),
    ("SET t 1", "+QUEUED\r\n"),
    ("INCR t", "+QUEUED\r\n"),
    ("INCR k", "+QUEUED\r\n"),
    ("GET t", "+QUEUED\r\n"),
    (
        "EXEC",
        "*4\r\n+OK\r\n:2\r\n-ERR value is not an integer or out of range\r\n$1\r\n2\r\n",
    ),
    ("EXEC", "-ERR EXEC without MULTI\r\n"),
    ("DISCARD", "-ERR DISCARD without MULTI\r\n"),
    ("MULTI", "+OK\r\n"),
    ("MULTI", "-ERR MULTI calls can not be nested\r\n"),
    ("SET t 5", "+QUEUED\r\n"),
    ("DISCARD", "+OK\r\n"),
    ("GET t", "$1\r\n2\r\n"),
    ("MULTI", "+OK\r\n"),
    ("SET t 6", "+QUEUED\r\n"),
    (
        "NOPE",
        "-ERR unknown command 'NOPE', with args beginning with: \r\n",
    ),
    (
        "EXEC",
        "-EXECABORT Transaction discarded because of previous errors.\r\n",
    ),
    ("GET t", "$1\r\n2\r\n"),
    ("MULTI", "+OK\r\n"),
    (
        "GET",
        "-ERR wrong number of arguments for 'get' command\r\n",
    ),
    (
        "EXEC",
        "-EXECABORT Transaction discarded because of previous errors.\r\n",
    ),
    ("MULTI", "+OK\r\n"),
    ("EXEC", "*0\r\n"),
    ("SET \"a b\" 'c d'", "+OK\r\n"),
    ("GET \"a b\"", "$3\r\nc d\r\n"),
    ("ECHO \"\\x41\\n\\t\"", "$3\r\nA\n\t\r\n"),
    ("ECHO 'it\\'s'", "$4\r\nit's\r\n"),
    ("set K v", "+OK\r\n"),
    ("GeT K", "$1\r\nv\r\n"),
    ("FLUSHALL x", "-ERR syntax error\r\n"),
    ("FLUSHALL", "+OK\r\n"),
    ("DBSIZE", ":0\r\n"),
    // The one deliberate difference: no configuration to read.
    ("CONFIG GET save", "*0\r\n"),
    ("config get *", "*0\r\n"),
];
