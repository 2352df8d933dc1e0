//! Reading telemetry timestamps. Every telemetry body carries three, and
//! chrono's general RFC 3339 parser took a tenth of the controller's ingest
//! CPU. Nodes write one layout, chrono's own output in UTC
//! (`2026-11-29T03:40:00.123456789Z`, 0-9 fraction digits), read here
//! directly; anything else goes through chrono's parser as before, so what is
//! accepted, and the error for what is not, are unchanged.

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserializer;
use serde::de::{Error, Visitor};

/// Parse an RFC 3339 timestamp into UTC.
pub fn parse(s: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    match utc_layout(s.as_bytes()) {
        Some(t) => Ok(t),
        None => s.parse(),
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z`, or None for any other text.
fn utc_layout(b: &[u8]) -> Option<DateTime<Utc>> {
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[b.len() - 1] != b'Z'
    {
        return None;
    }
    let number = |from: usize, to: usize| -> Option<u32> {
        b[from..to].iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let nanos = match &b[19..b.len() - 1] {
        [] => 0,
        [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => {
            number(20, b.len() - 1)? * 10u32.pow(9 - digits.len() as u32)
        }
        _ => return None,
    };
    let year = i32::try_from(number(0, 4)?).ok()?;
    NaiveDate::from_ymd_opt(year, number(5, 7)?, number(8, 10)?)?
        .and_hms_nano_opt(number(11, 13)?, number(14, 16)?, number(17, 19)?, nanos)
        .map(|t| t.and_utc())
}

struct TimestampVisitor;

impl Visitor<'_> for TimestampVisitor {
    type Value = DateTime<Utc>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an RFC 3339 timestamp")
    }

    fn visit_str<E: Error>(self, s: &str) -> Result<Self::Value, E> {
        parse(s).map_err(E::custom)
    }
}

/// `#[serde(deserialize_with = "timestamp::deserialize")]`
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    d.deserialize_str(TimestampVisitor)
}

/// For `Option<DateTime<Utc>>` fields, with `#[serde(default)]`.
pub mod option {
    use super::*;

    struct OptionVisitor;

    impl<'de> Visitor<'de> for OptionVisitor {
        type Value = Option<DateTime<Utc>>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an RFC 3339 timestamp or null")
        }

        fn visit_none<E: Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            super::deserialize(d).map(Some)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        d.deserialize_option(OptionVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nodes_layout_reads_as_chrono_reads_it() {
        for s in [
            "2026-11-29T03:40:00Z",
            "2026-11-29T03:40:00.1Z",
            "2026-11-29T03:40:00.123456Z",
            "2026-11-29T03:40:00.123456789Z",
            "2024-02-29T23:59:59.999999999Z",
            "0001-01-01T00:00:00Z",
        ] {
            let expected: DateTime<Utc> = s.parse().unwrap();
            assert_eq!(utc_layout(s.as_bytes()), Some(expected), "{s}");
            assert_eq!(parse(s).unwrap(), expected);
        }
        let now = Utc::now();
        let written = serde_json::to_string(&now).unwrap();
        assert_eq!(parse(written.trim_matches('"')).unwrap(), now);
    }

    #[test]
    fn other_rfc3339_forms_still_parse_through_chrono() {
        for s in [
            "2026-11-29T04:40:00+01:00",
            "2026-11-29t03:40:00z",
            "2026-11-29 03:40:00Z",
            "2026-11-29T03:40:00.1234567891Z",
        ] {
            assert_eq!(utc_layout(s.as_bytes()), None, "{s}");
            assert_eq!(
                parse(s).unwrap(),
                s.parse::<DateTime<Utc>>().unwrap(),
                "{s}"
            );
        }
    }

    #[test]
    fn impossible_or_malformed_timestamps_are_refused_with_chronos_error() {
        for s in [
            "2026-02-30T03:40:00Z",
            "2026-11-29T24:00:00Z",
            "2026-11-29T03:40:00.Z",
            "2026-11-29T03:4a:00Z",
            "2026-11-29T03:40:00",
            "",
            "not a time",
        ] {
            assert_eq!(utc_layout(s.as_bytes()), None, "{s}");
            let chrono_error = s.parse::<DateTime<Utc>>().unwrap_err();
            assert_eq!(parse(s).unwrap_err(), chrono_error, "{s}");
        }
    }
}
