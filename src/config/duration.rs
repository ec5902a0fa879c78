//! Durations as the command line, the environment and the TOML file write
//! them: `250ms`, `30s`, `5m`, `1h`, or a bare `0`.

use std::time::Duration;

/// Parses a duration written as `250ms`, `30s`, `5m`, `1h` (or a bare `0`).
///
/// ```
/// use std::time::Duration;
/// assert_eq!(syncnet::parse_duration("250ms"), Ok(Duration::from_millis(250)));
/// assert_eq!(syncnet::parse_duration("5m"), Ok(Duration::from_secs(300)));
/// assert_eq!(syncnet::parse_duration("0"), Ok(Duration::ZERO));
/// assert!(syncnet::parse_duration("5 parsecs").is_err());
/// ```
///
/// # Errors
/// A message saying what is expected, when `text` is not of that form.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    let expected = || format!("'{text}' is not a duration (expected e.g. 250ms, 30s, 5m, 1h or 0)");
    let value: u64 = number.parse().map_err(|_| expected())?;
    let millis_per_unit = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "" if value == 0 => 0,
        _ => return Err(expected()),
    };
    value
        .checked_mul(millis_per_unit)
        .map(Duration::from_millis)
        .ok_or_else(expected)
}

/// Formats a duration the way [`parse_duration`] reads it, in the largest
/// unit that divides it (for logs, `--help` and docs).
///
/// ```
/// use std::time::Duration;
/// assert_eq!(syncnet::format_duration(Duration::from_secs(300)), "5m");
/// assert_eq!(syncnet::format_duration(Duration::from_millis(1500)), "1500ms");
/// assert_eq!(syncnet::format_duration(Duration::ZERO), "0");
/// ```
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        "0".to_string()
    } else if ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1_000) {
        format!("{}s", ms / 1_000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_trip() {
        for text in ["0", "250ms", "30s", "5m", "1h"] {
            let d = parse_duration(text).unwrap();
            assert_eq!(format_duration(d), text);
        }
    }

    #[test]
    fn bad_durations_are_rejected() {
        for text in [
            "",
            "s",
            "10",
            "1.5s",
            "-1s",
            "10 s",
            "10d",
            "99999999999999999999h",
        ] {
            assert!(parse_duration(text).is_err(), "{text:?} was accepted");
        }
    }
}
