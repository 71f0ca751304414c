//! UTC timestamps as Ceph and OpenStack write them: `2026-11-26 12:00:00.618769` (Ceph),
//! `2026-11-26T12:00:00.000000` (Manila), `2026-11-26T12:00:00.000000Z` (Keystone).

/// Parses such a timestamp (date and time separated by `T` or a space, an optional
/// fraction, an optional `Z` or `+00:00`) into a protobuf timestamp.
pub fn parse_utc(s: &str) -> Option<prost_types::Timestamp> {
    let s = s.trim();
    let s = s
        .strip_suffix('Z')
        .or_else(|| s.strip_suffix("+00:00"))
        .unwrap_or(s);
    // Date and time both whole: jiff alone would take a date without a time.
    let (date, time) = s.split_once(['T', ' '])?;
    if date.len() != 10 || time.len() < 8 {
        return None;
    }
    let civil: jiff::civil::DateTime = format!("{date}T{time}").parse().ok()?;
    let t = civil.to_zoned(jiff::tz::TimeZone::UTC).ok()?.timestamp();
    Some(prost_types::Timestamp {
        seconds: t.as_second(),
        nanos: t.subsec_nanosecond(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any instant from 1970 to 9999, written in each spelling Ceph, Manila and
        /// Keystone use (with 0, 3, 6 or 9 fraction digits), parses back to itself (to
        /// the digits written).
        #[test]
        fn every_spelling_parses_back(secs in 0i64..253_402_300_800, nanos in 0i32..1_000_000_000) {
            let t = jiff::Timestamp::new(secs, nanos).unwrap();
            for (digits, kept) in [(0, 0), (3, nanos / 1_000_000 * 1_000_000), (6, nanos / 1_000 * 1_000), (9, nanos)] {
                let base = t.strftime("%Y-%m-%dT%H:%M:%S").to_string();
                let frac = if digits == 0 {
                    String::new()
                } else {
                    format!(".{}", &format!("{nanos:09}")[..digits])
                };
                for s in [
                    format!("{base}{frac}"),
                    format!("{base}{frac}Z"),
                    format!("{}{frac}", base.replacen('T', " ", 1)),
                    format!("{base}{frac}+00:00"),
                ] {
                    let p = parse_utc(&s);
                    prop_assert_eq!(p, Some(prost_types::Timestamp { seconds: secs, nanos: kept }), "{}", s);
                }
            }
        }

        /// Nothing else parses to a time: arbitrary text is refused or parses to a
        /// well-formed instant, and never panics.
        #[test]
        fn arbitrary_text_never_panics(s in ".{0,40}") {
            if let Some(t) = parse_utc(&s) {
                prop_assert!((0..1_000_000_000).contains(&t.nanos));
            }
        }
    }

    #[test]
    fn every_spelling_of_one_instant() {
        let want = parse_utc("2026-11-26 12:00:00").unwrap();
        assert_eq!(want.seconds, 1_795_694_400);
        for s in [
            "2026-11-26T12:00:00",
            "2026-11-26T12:00:00Z",
            "2026-11-26T12:00:00.000000",
            "2026-11-26T12:00:00.000000Z",
            "2026-11-26 12:00:00+00:00",
        ] {
            assert_eq!(parse_utc(s), Some(want), "{s}");
        }
        let t = parse_utc("2022-06-14 13:54:58.618769").unwrap();
        assert_eq!((t.seconds, t.nanos), (1_655_214_898, 618_769_000));
        assert_eq!(parse_utc("1970-01-01 00:00:00").unwrap().seconds, 0);
        for bad in [
            "garbage",
            "2026-13-01 00:00:00",
            "2026-11-26",
            "2026-11-26 12:00:00.x",
        ] {
            assert!(parse_utc(bad).is_none(), "{bad}");
        }
    }
}
