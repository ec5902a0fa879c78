//! A request's arguments: picked out of a frame ([`parse`]) as ranges, read
//! through [`Args`], without copying them (except for an inline command
//! with quotes, whose unquoted arguments are written to a scratch buffer).

use std::ops::Range;

/// Where [`parse`] put the arguments' bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// In the frame itself.
    Frame,
    /// In the scratch buffer (an inline command with quotes).
    Scratch,
}

/// Picks the arguments out of `frame` (a request as [`crate::resp::Resp`]
/// cut it): their positions go to `ranges` (cleared first), in the frame
/// or, for an inline command with quotes, in `scratch`.
///
/// # Errors
/// Redis's protocol error text: `unbalanced quotes in request`; for an
/// array, which the codec has checked already, `invalid request` if it
/// somehow does not parse.
pub fn parse(
    frame: &[u8],
    ranges: &mut Vec<Range<usize>>,
    scratch: &mut Vec<u8>,
) -> Result<Source, &'static str> {
    ranges.clear();
    if frame.first() == Some(&b'*') {
        return array(frame, ranges)
            .map(|()| Source::Frame)
            .ok_or("invalid request");
    }
    if !frame.iter().any(|&byte| byte == b'"' || byte == b'\'') {
        split_plain(frame, ranges);
        return Ok(Source::Frame);
    }
    scratch.clear();
    split_quoted(frame, ranges, scratch).ok_or("unbalanced quotes in request")?;
    Ok(Source::Scratch)
}

/// The bulk strings of an array request, as the codec checked it.
fn array(frame: &[u8], ranges: &mut Vec<Range<usize>>) -> Option<()> {
    let Line::Number(count, mut pos) = number_line(frame, 1) else {
        return None;
    };
    for _ in 0..count.max(0) {
        let Line::Number(len, data) = number_line(frame, pos.checked_add(1)?) else {
            return None;
        };
        let end = data.checked_add(usize::try_from(len).ok()?)?;
        frame.get(data..end)?;
        ranges.push(data..end);
        pos = end + 2;
    }
    Some(())
}

/// What [`number_line`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line {
    /// The number, and where the next line starts.
    Number(i64, usize),
    /// The line has not fully arrived yet.
    Incomplete,
    /// Not a number ([`parse_i64`]'s rules) followed by `\r\n`.
    Invalid,
}

/// The number written from `from` up to `\r\n` (a `*N` or `$N` line
/// without its first byte), read in one pass; [`parse_i64`]'s rules.
pub fn number_line(buf: &[u8], from: usize) -> Line {
    let negative = buf.get(from) == Some(&b'-');
    let digits = from + usize::from(negative);
    let mut at = digits;
    let mut value: u64 = 0;
    loop {
        match buf.get(at) {
            // 19 digits at most: an i64's; and no overflow in a u64.
            Some(&digit @ b'0'..=b'9') if at - digits < 19 => {
                value = value * 10 + u64::from(digit - b'0');
                at += 1;
            }
            Some(b'\r') => break,
            Some(_) => return Line::Invalid,
            None => return Line::Incomplete,
        }
    }
    // No digits, a leading zero (but "0" itself), "-0".
    let first = buf.get(digits).copied();
    if at == digits || (first == Some(b'0') && (at - digits > 1 || negative)) {
        return Line::Invalid;
    }
    let value = if negative {
        0i64.checked_sub_unsigned(value)
    } else {
        i64::try_from(value).ok()
    };
    match (value, buf.get(at + 1)) {
        (Some(value), Some(b'\n')) => Line::Number(value, at + 2),
        (Some(_), None) => Line::Incomplete,
        _ => Line::Invalid,
    }
}

/// Whitespace that ends an argument outside quotes (as Redis's
/// `sdssplitargs`).
fn ends_arg(byte: u8) -> bool {
    matches!(byte, b' ' | b'\n' | b'\r' | b'\t' | 0)
}

/// Whitespace skipped before an argument (C's `isspace`, and NUL).
fn is_blank(byte: u8) -> bool {
    ends_arg(byte) || matches!(byte, 0x0b | 0x0c)
}

/// An inline command without quotes: its words, in the frame.
fn split_plain(line: &[u8], ranges: &mut Vec<Range<usize>>) {
    let mut pos = 0;
    loop {
        while pos < line.len() && is_blank(line[pos]) {
            pos += 1;
        }
        if pos == line.len() {
            return;
        }
        let start = pos;
        while pos < line.len() && !ends_arg(line[pos]) {
            pos += 1;
        }
        ranges.push(start..pos);
    }
}

/// An inline command with quotes, unquoted into `out` as Redis's
/// `sdssplitargs` does: `"..."` with `\n`, `\r`, `\t`, `\b`, `\a`, `\xHH`
/// and `\<char>` escapes, `'...'` with only `\'`. `None` for unbalanced
/// quotes, or a closing quote not followed by a space or the end.
fn split_quoted(line: &[u8], ranges: &mut Vec<Range<usize>>, out: &mut Vec<u8>) -> Option<()> {
    let at = |i: usize| line.get(i).copied().unwrap_or(0);
    let mut pos = 0;
    loop {
        while pos < line.len() && is_blank(line[pos]) {
            pos += 1;
        }
        if pos == line.len() {
            return Some(());
        }
        let start = out.len();
        let (mut in_double, mut in_single) = (false, false);
        loop {
            let byte = at(pos);
            if pos >= line.len() {
                if in_double || in_single {
                    return None; // unterminated quotes
                }
                break;
            }
            if in_double {
                if byte == b'\\'
                    && at(pos + 1) == b'x'
                    && let (Some(high), Some(low)) = (hex(at(pos + 2)), hex(at(pos + 3)))
                {
                    out.push(high * 16 + low);
                    pos += 4;
                    continue;
                }
                if byte == b'\\' && pos + 1 < line.len() {
                    pos += 1;
                    out.push(match line[pos] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                } else if byte == b'"' {
                    // The closing quote must end the argument.
                    if pos + 1 < line.len() && !is_blank(line[pos + 1]) {
                        return None;
                    }
                    pos += 1;
                    break;
                } else {
                    out.push(byte);
                }
            } else if in_single {
                if byte == b'\\' && at(pos + 1) == b'\'' {
                    pos += 1;
                    out.push(b'\'');
                } else if byte == b'\'' {
                    if pos + 1 < line.len() && !is_blank(line[pos + 1]) {
                        return None;
                    }
                    pos += 1;
                    break;
                } else {
                    out.push(byte);
                }
            } else if ends_arg(byte) {
                break;
            } else if byte == b'"' {
                in_double = true;
            } else if byte == b'\'' {
                in_single = true;
            } else {
                out.push(byte);
            }
            pos += 1;
        }
        ranges.push(start..out.len());
    }
}

/// The value of a hexadecimal digit.
fn hex(byte: u8) -> Option<u8> {
    char::from(byte)
        .to_digit(16)
        .and_then(|digit| u8::try_from(digit).ok())
}

/// A request's arguments: the command name first.
#[derive(Debug, Clone, Copy)]
pub struct Args<'a> {
    base: &'a [u8],
    ranges: &'a [Range<usize>],
}

impl<'a> Args<'a> {
    /// The arguments at `ranges` in `base`.
    pub fn new(base: &'a [u8], ranges: &'a [Range<usize>]) -> Args<'a> {
        Args { base, ranges }
    }

    /// How many there are, the command name included.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// True when there are none (an empty line, `*0`).
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Argument `i` (0 is the command name); empty when there is none.
    pub fn get(&self, i: usize) -> &'a [u8] {
        self.ranges
            .get(i)
            .and_then(|range| self.base.get(range.clone()))
            .unwrap_or_default()
    }

    /// The arguments from `i` on.
    pub fn iter_from(&self, i: usize) -> impl Iterator<Item = &'a [u8]> + 'a {
        let base = self.base;
        self.ranges
            .get(i..)
            .unwrap_or_default()
            .iter()
            .map(move |range| base.get(range.clone()).unwrap_or_default())
    }
}

/// A whole decimal `i64` exactly as Redis's `string2ll` reads one: an
/// optional `-`, no `+`, no leading zeros or spaces, at most 20 characters.
pub fn parse_i64(text: &[u8]) -> Option<i64> {
    if text.is_empty() || text.len() > 20 {
        return None;
    }
    if text == b"0" {
        return Some(0);
    }
    let (negative, digits) = match text.strip_prefix(b"-") {
        Some(digits) => (true, digits),
        None => (false, text),
    };
    if !matches!(digits.first(), Some(b'1'..=b'9')) {
        return None;
    }
    let mut value: u64 = 0;
    for &byte in digits {
        if !byte.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(byte - b'0'))?;
    }
    if negative {
        0i64.checked_sub_unsigned(value)
    } else {
        i64::try_from(value).ok()
    }
}
