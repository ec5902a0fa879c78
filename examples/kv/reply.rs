//! RESP2 replies, written straight into the reply buffer that
//! [`FramedService`](syncnet::service::FramedService) hands in and reuses:
//! no allocation of their own.

/// `+OK`.
pub fn ok(out: &mut Vec<u8>) {
    out.extend_from_slice(b"+OK\r\n");
}

/// A simple string: `+text`.
pub fn simple(out: &mut Vec<u8>, text: &str) {
    out.push(b'+');
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// An error reply, `-text` (e.g. `ERR syntax error`). Any `\r` or `\n`
/// in the text becomes a space, as Redis does, so the reply stays one line.
pub fn error(out: &mut Vec<u8>, text: &str) {
    error_parts(out, &[text.as_bytes()]);
}

/// An error reply made of several parts (some of them a client's bytes),
/// written one after the other.
pub fn error_parts(out: &mut Vec<u8>, parts: &[&[u8]]) {
    out.push(b'-');
    for part in parts {
        error_text(out, part);
    }
    out.extend_from_slice(b"\r\n");
}

/// Part of an error reply's text: `\r` and `\n` become spaces.
pub fn error_text(out: &mut Vec<u8>, text: &[u8]) {
    out.extend(text.iter().map(|&byte| match byte {
        b'\r' | b'\n' => b' ',
        other => other,
    }));
}

/// An integer: `:n`.
pub fn integer(out: &mut Vec<u8>, n: i64) {
    out.push(b':');
    decimal(out, n);
    out.extend_from_slice(b"\r\n");
}

/// A bulk string: `$len`, then the bytes.
pub fn bulk(out: &mut Vec<u8>, data: &[u8]) {
    out.reserve(data.len() + 16);
    out.push(b'$');
    unsigned(out, data.len() as u64);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// The null bulk string, `$-1`: no such key.
pub fn null(out: &mut Vec<u8>) {
    out.extend_from_slice(b"$-1\r\n");
}

/// An array's header, `*n`; its `n` elements follow.
pub fn array(out: &mut Vec<u8>, n: usize) {
    out.push(b'*');
    unsigned(out, n as u64);
    out.extend_from_slice(b"\r\n");
}

/// `n` in decimal.
pub fn decimal(out: &mut Vec<u8>, n: i64) {
    if n < 0 {
        out.push(b'-');
    }
    unsigned(out, n.unsigned_abs());
}

/// `n` in decimal, written from its last digit into a stack buffer.
fn unsigned(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}
