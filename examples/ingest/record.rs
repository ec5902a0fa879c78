//! One record: a JSON object on one line with a string `"id"`. Checking it
//! and taking out its id, without building a `serde_json::Value` tree: the
//! object is walked once, its other members skipped (still checked as JSON),
//! and the id arrives as the `&RawValue` text it was written as, unescaped
//! only then.
//!
//! The same check runs on what a producer sends and, at start-up, on every
//! line of the file.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::error::Category;
use serde_json::value::RawValue;

/// The longest id, in bytes.
pub const MAX_ID_LEN: usize = 128;

/// Why a line is not a record; each has its reply line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not JSON (or not UTF-8, or an object with a member named twice).
    InvalidJson,
    /// JSON, but not an object with an `"id"` member.
    MissingId,
    /// An `"id"` that is not a string of 1 to 128 printable ASCII bytes
    /// without spaces.
    BadId,
}

impl Refusal {
    /// The reply line, without its newline.
    pub fn reply(self) -> &'static str {
        match self {
            Refusal::InvalidJson => "err invalid json",
            Refusal::MissingId => "err missing id",
            Refusal::BadId => "err bad id",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reply())
    }
}

/// The id of the record on `line`, unescaped, or why it is not a record.
///
/// ```text
/// {"id":"r1","v":[1,2]}   → Ok("r1")
/// {"id":"a\u0062"}        → Ok("ab")
/// {"id":7}                → Err(BadId)
/// ["id"]                  → Err(MissingId)
/// {"id":"r1"              → Err(InvalidJson)
/// ```
pub fn parse_id(line: &[u8]) -> Result<String, Refusal> {
    let found = match serde_json::from_slice::<IdOf>(line) {
        Ok(found) => found,
        // Valid JSON of the wrong shape (an array, a number, ...).
        Err(e) if e.classify() == Category::Data => return Err(Refusal::MissingId),
        Err(_) => return Err(Refusal::InvalidJson),
    };
    let raw = match found {
        IdOf::Object(Some(raw)) => raw,
        IdOf::Object(None) => return Err(Refusal::MissingId),
        IdOf::Twice => return Err(Refusal::BadId),
    };
    let id: String = serde_json::from_str(raw.get()).map_err(|_| Refusal::BadId)?;
    if is_valid_id(&id) {
        Ok(id)
    } else {
        Err(Refusal::BadId)
    }
}

/// 1 to [`MAX_ID_LEN`] bytes, each printable ASCII other than the space.
pub fn is_valid_id(id: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
}

/// What walking the top-level object found.
enum IdOf<'a> {
    /// The `"id"` member's JSON text, if there was one.
    Object(Option<&'a RawValue>),
    /// Two `"id"` members: which one counts is anybody's guess.
    Twice,
}

impl<'de: 'a, 'a> Deserialize<'de> for IdOf<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ObjectVisitor)
    }
}

/// Visits the members of the top-level object; accepts nothing else.
struct ObjectVisitor;

impl<'de> Visitor<'de> for ObjectVisitor {
    type Value = IdOf<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<IdOf<'de>, A::Error> {
        let mut id = None;
        let mut twice = false;
        while let Some(key) = map.next_key::<Key>()? {
            if key.is_id {
                let raw: &'de RawValue = map.next_value()?;
                twice |= id.replace(raw).is_some();
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(if twice { IdOf::Twice } else { IdOf::Object(id) })
    }
}

/// A member name, only compared with `"id"` (no allocation unless it is
/// written with escapes).
struct Key {
    is_id: bool,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl Visitor<'_> for KeyVisitor {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<Key, E> {
        Ok(Key {
            is_id: name == "id",
        })
    }
}
