//! How a timestamp goes on the wire, written without `fmt`.

use chrono::{DateTime, Utc};

type Timestamp = DateTime<Utc>;

/// For `#[serde(serialize_with = "slipway_wire::time::rfc3339")]` on a response's timestamps:
/// exactly what chrono's `Serialize` writes (RFC 3339, UTC as `Z`, the fraction in 0, 3, 6 or 9
/// digits), without going through `fmt`, which cost about 2,800 instructions a timestamp (a
/// tenth of a small authenticated response, more on a page of resources).
pub fn rfc3339<S: serde::Serializer>(at: &Timestamp, serializer: S) -> Result<S::Ok, S::Error> {
    let mut text = [0u8; 30];
    match write_rfc3339(at, &mut text) {
        Some(len) => serializer.serialize_str(std::str::from_utf8(&text[..len]).expect("digits and ASCII punctuation")),
        // A year outside 0–9999 or a leap second: chrono's own way.
        None => serde::Serialize::serialize(at, serializer),
    }
}

/// [`rfc3339`] for an optional timestamp.
pub fn rfc3339_option<S: serde::Serializer>(at: &Option<Timestamp>, serializer: S) -> Result<S::Ok, S::Error> {
    struct Rfc3339<'a>(&'a Timestamp);
    impl serde::Serialize for Rfc3339<'_> {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            rfc3339(self.0, serializer)
        }
    }
    match at {
        Some(at) => serializer.serialize_some(&Rfc3339(at)),
        None => serializer.serialize_none(),
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fff[fff[fff]]]Z` into `out`; its length, or `None` where chrono would
/// write something else (a year outside 0–9999, a leap second).
fn write_rfc3339(at: &Timestamp, out: &mut [u8; 30]) -> Option<usize> {
    use chrono::{Datelike, Timelike};
    let (year, nanos) = (at.year(), at.nanosecond());
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        return None;
    }
    let digits = |out: &mut [u8], value: u32| {
        let mut value = value;
        for slot in out.iter_mut().rev() {
            *slot = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    digits(&mut out[0..4], year as u32);
    out[4] = b'-';
    digits(&mut out[5..7], at.month());
    out[7] = b'-';
    digits(&mut out[8..10], at.day());
    out[10] = b'T';
    digits(&mut out[11..13], at.hour());
    out[13] = b':';
    digits(&mut out[14..16], at.minute());
    out[16] = b':';
    digits(&mut out[17..19], at.second());
    let mut len = 19;
    let (fraction, width) = match nanos {
        0 => (0, 0),
        n if n % 1_000_000 == 0 => (n / 1_000_000, 3),
        n if n % 1_000 == 0 => (n / 1_000, 6),
        n => (n, 9),
    };
    if width > 0 {
        out[len] = b'.';
        digits(&mut out[len + 1..len + 1 + width], fraction);
        len += 1 + width;
    }
    out[len] = b'Z';
    Some(len + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[derive(serde::Serialize)]
    struct Both {
        #[serde(serialize_with = "rfc3339")]
        ours: Timestamp,
        theirs: Timestamp,
        #[serde(serialize_with = "rfc3339_option")]
        ours_option: Option<Timestamp>,
        theirs_option: Option<Timestamp>,
    }

    #[test]
    fn timestamps_are_written_exactly_as_chrono_writes_them() {
        let seconds = [0, 1, 59, 951_782_400, 1_765_000_000, 4_102_444_799, 253_402_300_799, -62_167_219_200];
        let nanos = [0, 1, 999, 1_000, 123_000, 123_456_000, 5_000_000, 120_000_000, 123_456_789, 999_999_999];
        for s in seconds {
            for n in nanos {
                let at = Utc.timestamp_opt(s, n).single().unwrap();
                for option in [None, Some(at)] {
                    let json =
                        serde_json::to_value(Both { ours: at, theirs: at, ours_option: option, theirs_option: option })
                            .unwrap();
                    assert_eq!(json["ours"], json["theirs"], "{s}.{n:09}");
                    assert_eq!(json["ours_option"], json["theirs_option"], "{s}.{n:09} optional");
                }
            }
        }
        let far = Utc.with_ymd_and_hms(10_000, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(
            serde_json::to_value(Both { ours: far, theirs: far, ours_option: None, theirs_option: None }).unwrap()["ours"],
            serde_json::to_value(far).unwrap(),
            "chrono's way outside 0–9999"
        );
    }
}
