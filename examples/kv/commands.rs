//! The commands: their names and arities ([`lookup`], [`check`]), and what
//! each does ([`run`]), with Redis's reply types and error texts.
//!
//! `MULTI`, `EXEC`, `DISCARD` and `QUIT` act on the connection, not on the
//! store: [`crate::protocol`] carries them out.

use syncnet::RequestErrorKind;
use syncnet::service::Answer;

use crate::reply;
use crate::request::{Args, parse_i64};
use crate::store::{Db, now_ms};

/// Every command, in the order of [`COMMANDS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmd {
    Ping,
    Echo,
    Get,
    Set,
    Del,
    Exists,
    Incr,
    IncrBy,
    Decr,
    DecrBy,
    MGet,
    MSet,
    Expire,
    Ttl,
    DbSize,
    FlushAll,
    Config,
    Multi,
    Exec,
    Discard,
    Quit,
}

/// A command's name (lower case, as in Redis's error texts) and arity:
/// `n` takes exactly `n` arguments, `-n` at least `n` (the name counts).
#[derive(Debug)]
pub struct Spec {
    pub name: &'static str,
    pub arity: i32,
    pub cmd: Cmd,
}

const fn spec(name: &'static str, arity: i32, cmd: Cmd) -> Spec {
    Spec { name, arity, cmd }
}

/// Every command, indexed by `Cmd as usize`.
static COMMANDS: [Spec; 21] = [
    spec("ping", -1, Cmd::Ping),
    spec("echo", 2, Cmd::Echo),
    spec("get", 2, Cmd::Get),
    spec("set", -3, Cmd::Set),
    spec("del", -2, Cmd::Del),
    spec("exists", -2, Cmd::Exists),
    spec("incr", 2, Cmd::Incr),
    spec("incrby", 3, Cmd::IncrBy),
    spec("decr", 2, Cmd::Decr),
    spec("decrby", 3, Cmd::DecrBy),
    spec("mget", -2, Cmd::MGet),
    spec("mset", -3, Cmd::MSet),
    spec("expire", 3, Cmd::Expire),
    spec("ttl", 2, Cmd::Ttl),
    spec("dbsize", 1, Cmd::DbSize),
    spec("flushall", -1, Cmd::FlushAll),
    spec("config", -2, Cmd::Config),
    spec("multi", 1, Cmd::Multi),
    spec("exec", 1, Cmd::Exec),
    spec("discard", 1, Cmd::Discard),
    spec("quit", -1, Cmd::Quit),
];

/// The command called `name`, in any case.
pub fn lookup(name: &[u8]) -> Option<&'static Spec> {
    if name.is_empty() || name.len() > 8 {
        return None;
    }
    // The name as one word, lower case: `| 0x20` turns `A`-`Z` into
    // `a`-`z` and no other byte into a letter, and every command name is
    // letters only: a name matches exactly when its word does.
    // Built in a register: bytes stored to memory and read back as one
    // word would stall the load.
    let word = name
        .iter()
        .rev()
        .fold(0u64, |word, &byte| (word << 8) | u64::from(byte | 0x20));
    WORDS
        .iter()
        .position(|&known| known == word)
        .map(|i| &COMMANDS[i])
}

/// Each command's name as [`lookup`]'s word: its bytes, zero-padded to 8.
static WORDS: [u64; COMMANDS.len()] = {
    let mut words = [0u64; COMMANDS.len()];
    let mut i = 0;
    while i < COMMANDS.len() {
        let name = COMMANDS[i].name.as_bytes();
        let mut bytes = [0u8; 8];
        let mut j = 0;
        while j < name.len() {
            bytes[j] = name[j];
            j += 1;
        }
        words[i] = u64::from_le_bytes(bytes);
        i += 1;
    }
    words
};

/// The command `args` calls, if it exists and gets a valid number of
/// arguments; otherwise Redis's error goes to `out` and `Err` carries the
/// answer for it.
pub fn check(args: Args<'_>, out: &mut Vec<u8>) -> Result<&'static Spec, Answer> {
    let Some(spec) = lookup(args.get(0)) else {
        unknown_command(args, out);
        return Err(Answer::Error(RequestErrorKind::Malformed));
    };
    let n = i64::try_from(args.len()).unwrap_or(i64::MAX);
    let arity = i64::from(spec.arity);
    let fits = if arity >= 0 { n == arity } else { n >= -arity };
    // MSET takes pairs.
    if !fits || (spec.cmd == Cmd::MSet && n % 2 == 0) {
        return Err(wrong_arity(out, spec.name));
    }
    Ok(spec)
}

/// `-ERR unknown command 'name', with args beginning with: 'a' 'b' `, in
/// Redis 7's words: the name and the arguments cut at 128 bytes.
fn unknown_command(args: Args<'_>, out: &mut Vec<u8>) {
    let name = args.get(0);
    out.extend_from_slice(b"-ERR unknown command '");
    reply::error_text(out, &name[..name.len().min(128)]);
    out.extend_from_slice(b"', with args beginning with: ");
    let mut listed = 0;
    for arg in args.iter_from(1) {
        if listed >= 128 {
            break;
        }
        let arg = &arg[..arg.len().min(128 - listed)];
        out.push(b'\'');
        reply::error_text(out, arg);
        out.extend_from_slice(b"' ");
        listed += arg.len() + 3;
    }
    out.extend_from_slice(b"\r\n");
}

/// `-ERR wrong number of arguments for 'name' command`.
pub fn wrong_arity(out: &mut Vec<u8>, name: &str) -> Answer {
    reply::error_parts(
        out,
        &[
            b"ERR wrong number of arguments for '",
            name.as_bytes(),
            b"' command",
        ],
    );
    Answer::Error(RequestErrorKind::Malformed)
}

/// An error reply for a request the command cannot take.
fn syntax_error(out: &mut Vec<u8>) -> Answer {
    reply::error(out, "ERR syntax error");
    Answer::Error(RequestErrorKind::Malformed)
}

/// An error reply for a request that was valid but failed.
fn failed(out: &mut Vec<u8>, text: &str) -> Answer {
    reply::error(out, text);
    Answer::Error(RequestErrorKind::Handler)
}

/// Redis's error for an argument or a value that is not an `i64`.
const NOT_AN_INTEGER: &str = "ERR value is not an integer or out of range";

/// Runs the store command `spec` with `args` (checked by [`check`]) on
/// `db`, writing its reply to `out`.
pub fn run(spec: &Spec, args: Args<'_>, db: &mut Db<'_, '_>, out: &mut Vec<u8>) -> Answer {
    let key = args.get(1);
    match spec.cmd {
        Cmd::Ping if args.len() > 2 => return wrong_arity(out, spec.name),
        Cmd::Ping if args.len() == 2 => reply::bulk(out, key),
        Cmd::Ping => reply::simple(out, "PONG"),
        Cmd::Echo => reply::bulk(out, key),
        Cmd::Get => db.with_key(key, |shard| {
            shard.read(key, |entry| match entry {
                Some(entry) => reply::bulk(out, &entry.value),
                None => reply::null(out),
            });
        }),
        Cmd::Set => return set(args, db, out),
        Cmd::Del | Cmd::Exists => {
            let del = spec.cmd == Cmd::Del;
            let count = if args.len() == 2 {
                db.with_key(key, |shard| count_key(shard, key, del))
            } else {
                db.with_all(|all| {
                    let keys = args.iter_from(1);
                    keys.map(|key| count_key(all.shard(key), key, del)).sum()
                })
            };
            reply::integer(out, count);
        }
        Cmd::Incr => return incr_by(key, Some(1), db, out),
        Cmd::Decr => return incr_by(key, Some(-1), db, out),
        Cmd::IncrBy => return incr_by(key, parse_i64(args.get(2)), db, out),
        Cmd::DecrBy => match parse_i64(args.get(2)) {
            Some(i64::MIN) => return failed(out, "ERR decrement would overflow"),
            by => return incr_by(key, by.map(|by| -by), db, out),
        },
        Cmd::MGet => db.with_all(|all| {
            reply::array(out, args.len() - 1);
            for key in args.iter_from(1) {
                all.shard(key).read(key, |entry| match entry {
                    Some(entry) => reply::bulk(out, &entry.value),
                    None => reply::null(out),
                });
            }
        }),
        Cmd::MSet => db.with_all(|all| {
            let mut pairs = args.iter_from(1);
            while let (Some(key), Some(value)) = (pairs.next(), pairs.next()) {
                all.shard(key).set(key, value, None);
            }
            reply::ok(out);
        }),
        Cmd::Expire => return expire(key, args.get(2), db, out),
        Cmd::Ttl => {
            let ttl = db.with_key(key, |shard| {
                shard.read(key, |entry| match entry.map(|entry| entry.expires_at()) {
                    None => -2,
                    Some(None) => -1,
                    Some(Some(at)) => {
                        let left = at.saturating_sub(now_ms()).saturating_add(500) / 1000;
                        i64::try_from(left).unwrap_or(i64::MAX)
                    }
                })
            });
            reply::integer(out, ttl);
        }
        Cmd::DbSize => {
            let keys = db.with_all(|all| all.len());
            reply::integer(out, i64::try_from(keys).unwrap_or(i64::MAX));
        }
        Cmd::FlushAll => {
            let mode = args.get(1);
            let valid = args.len() == 1
                || (args.len() == 2
                    && (mode.eq_ignore_ascii_case(b"async") || mode.eq_ignore_ascii_case(b"sync")));
            if !valid {
                return syntax_error(out);
            }
            db.with_all(|all| all.clear());
            reply::ok(out);
        }
        Cmd::Config => return config(args, out),
        Cmd::Multi | Cmd::Exec | Cmd::Discard | Cmd::Quit => {
            // The protocol carries these out itself and never gets here.
            return failed(out, "ERR not a store command");
        }
    }
    Answer::Reply
}

/// For DEL (`del`: remove it) or EXISTS: 1 if `key` exists, else 0.
fn count_key(shard: &mut crate::store::Shard, key: &[u8], del: bool) -> i64 {
    let there = if del {
        shard.contains(key) && shard.remove(key)
    } else {
        shard.contains(key)
    };
    i64::from(there)
}

/// `SET key value [NX|XX] [EX seconds|PX milliseconds]`, options in any
/// order: `+OK`, or a null reply when NX or XX said not to set it.
fn set(args: Args<'_>, db: &mut Db<'_, '_>, out: &mut Vec<u8>) -> Answer {
    let (key, value) = (args.get(1), args.get(2));
    let (mut nx, mut xx) = (false, false);
    // The number given and its unit in milliseconds.
    let mut ttl: Option<(&[u8], i64)> = None;
    let mut i = 3;
    while i < args.len() {
        let option = args.get(i);
        let next = (i + 1 < args.len()).then(|| args.get(i + 1));
        if option.eq_ignore_ascii_case(b"nx") && !xx {
            nx = true;
        } else if option.eq_ignore_ascii_case(b"xx") && !nx {
            xx = true;
        } else if let (Some(n), None) = (next, ttl)
            && (option.eq_ignore_ascii_case(b"ex") || option.eq_ignore_ascii_case(b"px"))
        {
            let unit = if option.eq_ignore_ascii_case(b"ex") {
                1000
            } else {
                1
            };
            ttl = Some((n, unit));
            i += 1;
        } else {
            return syntax_error(out);
        }
        i += 1;
    }
    let expires_at = match ttl {
        None => None,
        Some((n, unit)) => {
            let Some(n) = parse_i64(n) else {
                return failed(out, NOT_AN_INTEGER);
            };
            match expiry_time(n, unit) {
                Some(at) if n > 0 => Some(at),
                _ => return failed(out, "ERR invalid expire time in 'set' command"),
            }
        }
    };
    db.with_key(key, |shard| {
        if (nx || xx) && shard.contains(key) == nx {
            reply::null(out);
        } else {
            shard.set(key, value, expires_at);
            reply::ok(out);
        }
    });
    Answer::Reply
}

/// The [`now_ms`] time `n` units of `unit` ms from now; `None` on overflow.
fn expiry_time(n: i64, unit: i64) -> Option<u64> {
    let ms = u64::try_from(n.checked_mul(unit)?).ok()?;
    let at = now_ms().checked_add(ms)?;
    // Redis keeps times as i64 milliseconds.
    i64::try_from(at).ok().map(|_| at)
}

/// INCR, DECR, INCRBY, DECRBY: adds `by` (`None`: the argument was not an
/// integer) to the integer in `key` (0 if it does not exist), keeping its
/// time to live; replies with the result.
fn incr_by(key: &[u8], by: Option<i64>, db: &mut Db<'_, '_>, out: &mut Vec<u8>) -> Answer {
    let Some(by) = by else {
        return failed(out, NOT_AN_INTEGER);
    };
    let result = db.with_key(key, |shard| {
        let updated = shard.update(key, |entry| {
            let now = parse_i64(&entry.value).ok_or(NOT_AN_INTEGER)?;
            let new = now
                .checked_add(by)
                .ok_or("ERR increment or decrement would overflow")?;
            entry.value.clear();
            reply::decimal(&mut entry.value, new);
            Ok(new)
        });
        updated.unwrap_or_else(|| {
            shard.set(key, b"", None);
            shard.update(key, |entry| reply::decimal(&mut entry.value, by));
            Ok(by)
        })
    });
    match result {
        Ok(n) => {
            reply::integer(out, n);
            Answer::Reply
        }
        Err(text) => failed(out, text),
    }
}

/// `EXPIRE key seconds`: 1 when the key exists (a time not in the future
/// deletes it), 0 when it does not.
fn expire(key: &[u8], seconds: &[u8], db: &mut Db<'_, '_>, out: &mut Vec<u8>) -> Answer {
    let Some(seconds) = parse_i64(seconds) else {
        return failed(out, NOT_AN_INTEGER);
    };
    // `Some(None)`: not in the future, the key goes. Redis's bound: the
    // time in milliseconds must fit an i64.
    let at = match seconds {
        1.. => expiry_time(seconds, 1000).map(Some),
        _ if seconds >= i64::MIN / 1000 => Some(None),
        _ => None,
    };
    let Some(at) = at else {
        return failed(out, "ERR invalid expire time in 'expire' command");
    };
    let done = db.with_key(key, |shard| {
        if !shard.contains(key) {
            return false;
        }
        match at {
            Some(at) => shard.set_expiry(key, Some(at)),
            None => drop(shard.remove(key)),
        }
        true
    });
    reply::integer(out, i64::from(done));
    Answer::Reply
}

/// `CONFIG GET pattern...` answers an empty array (there is no
/// configuration to read; redis-benchmark asks for `save` and
/// `appendonly` and goes on without); other subcommands are unknown.
fn config(args: Args<'_>, out: &mut Vec<u8>) -> Answer {
    let sub = args.get(1);
    if !sub.eq_ignore_ascii_case(b"get") {
        reply::error_parts(
            out,
            &[
                b"ERR unknown subcommand '",
                &sub[..sub.len().min(128)],
                b"'. Try CONFIG HELP.",
            ],
        );
        return Answer::Error(RequestErrorKind::Malformed);
    }
    if args.len() < 3 {
        return wrong_arity(out, "config|get");
    }
    reply::array(out, 0);
    Answer::Reply
}
