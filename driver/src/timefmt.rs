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
    let (date, time) = s.split_once(['T', ' '])?;
    let mut d = date.split('-').map(str::parse::<i64>);
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    if d.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(str::parse::<i64>);
    let (hh, mm, ss) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    if !frac.bytes().all(|b| b.is_ascii_digit()) || frac.is_empty() {
        return None;
    }
    // Days from the civil date (proleptic Gregorian).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let nanos = format!("{frac:0<9}").get(..9)?.parse::<i32>().ok()?;
    Some(prost_types::Timestamp {
        seconds: days * 86_400 + hh * 3600 + mm * 60 + ss,
        nanos,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
