//! Timestamps as microseconds since the Unix epoch (UTC), parsed without
//! allocation on the hot path, plus the duration syntax of the flags (`30m`).
//!
//! Captures hold millions of RFC 3339 stamps; a hand-written parser for the
//! common shapes (`2026-11-21T11:09:34.324895Z`, offsets, `T` or space) is
//! several times faster than a general one and rejects anything else.

/// Microseconds in one second.
pub const MICROS: i64 = 1_000_000;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date (year, month, day) of a day number (inverse of [`days_from_civil`]).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn digits(b: &[u8]) -> Option<u32> {
    let mut v: u32 = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
    }
    Some(v)
}

/// Parse an RFC 3339 timestamp (`T` or space separator, optional fraction
/// of up to 9 digits, `Z` or `±HH:MM`) into microseconds since the epoch.
pub fn parse_rfc3339(s: &[u8]) -> Option<i64> {
    if s.len() < 19 || s[4] != b'-' || s[7] != b'-' || s[13] != b':' || s[16] != b':' {
        return None;
    }
    if s[10] != b'T' && s[10] != b't' && s[10] != b' ' {
        return None;
    }
    let year = digits(&s[0..4])?;
    let month = digits(&s[5..7])?;
    let day = digits(&s[8..10])?;
    let hour = digits(&s[11..13])?;
    let min = digits(&s[14..16])?;
    let sec = digits(&s[17..19])?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut micros: i64 = 0;
    if let Some((&b'.', frac)) = rest.split_first() {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 || n > 9 {
            return None;
        }
        let mut v = i64::from(digits(&frac[..n.min(6)])?);
        for _ in n..6 {
            v *= 10;
        }
        micros = v;
        rest = &frac[n..];
    }
    let offset_secs: i64 = match rest {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let h = i64::from(digits(&[*h1, *h2])?);
            let m = i64::from(digits(&[*m1, *m2])?);
            if h > 23 || m > 59 {
                return None;
            }
            let o = h * 3600 + m * 60;
            if *sign == b'-' { -o } else { o }
        }
        _ => return None,
    };
    let days = days_from_civil(i64::from(year), month, day);
    let secs =
        days * 86_400 + i64::from(hour) * 3600 + i64::from(min) * 60 + i64::from(sec) - offset_secs;
    Some(secs * MICROS + micros)
}

/// Parse a `--since`/`--until` value: RFC 3339, or a bare date
/// `YYYY-MM-DD` (midnight UTC).
pub fn parse_flag_time(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() == 10 {
        let mut full = s.to_owned();
        full.push_str("T00:00:00Z");
        return parse_rfc3339(full.as_bytes());
    }
    if b.len() == 19 {
        let mut full = s.to_owned();
        full.push('Z');
        return parse_rfc3339(full.as_bytes());
    }
    parse_rfc3339(b)
}

/// Parse a duration such as `90s`, `30m`, `1h`, `1d` into seconds (> 0).
pub fn parse_duration(s: &str) -> Option<i64> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: i64 = num.parse().ok()?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    let v = n.checked_mul(mult)?;
    (v > 0).then_some(v)
}

/// Format microseconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn fmt_secs(us: i64) -> String {
    let secs = us.div_euclid(MICROS);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// Format microseconds since the epoch as `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
pub fn fmt_micros(us: i64) -> String {
    let s = fmt_secs(us);
    format!("{}.{:06}Z", &s[..s.len() - 1], us.rem_euclid(MICROS))
}

/// Format a day number as `YYYY-MM-DD`.
pub fn fmt_day(day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// A duration in words: `30 minutes`, `1 hour`, `2 days`, `90 seconds`.
pub fn fmt_duration(secs: i64) -> String {
    let (n, unit) = if secs % 86_400 == 0 {
        (secs / 86_400, "day")
    } else if secs % 3600 == 0 {
        (secs / 3600, "hour")
    } else if secs % 60 == 0 {
        (secs / 60, "minute")
    } else {
        (secs, "second")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// Month number (1-12) of a three-letter English month name.
pub fn month_from_abbrev(b: &[u8]) -> Option<u32> {
    const NAMES: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    NAMES
        .iter()
        .position(|n| n.as_slice() == b)
        .map(|i| i as u32 + 1)
}

/// Current year (UTC), for BSD syslog stamps that carry none.
pub fn current_year() -> i32 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    civil_from_days(secs.div_euclid(86_400)).0 as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_shapes() {
        let z = parse_rfc3339(b"2026-11-21T11:09:34.324895Z").unwrap();
        assert_eq!(fmt_micros(z), "2026-11-21T11:09:34.324895Z");
        let off = parse_rfc3339(b"2020-05-24T18:00:00.5+08:00").unwrap();
        assert_eq!(fmt_micros(off), "2020-05-24T10:00:00.500000Z");
        let nanos = parse_rfc3339(b"2020-05-24 10:00:00.123456789-01:30").unwrap();
        assert_eq!(fmt_micros(nanos), "2020-05-24T11:30:00.123456Z");
        assert_eq!(parse_rfc3339(b"1970-01-01T00:00:00Z"), Some(0));
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            &b"2026-13-21T11:09:34Z"[..],
            b"2026-11-21T11:09:34",
            b"2026-11-21T11:09:34.Z",
            b"2026-11-21X11:09:34Z",
            b"2026-11-21T11:09:34+8:00",
            b"abcd-11-21T11:09:34Z",
            b"",
        ] {
            assert_eq!(
                parse_rfc3339(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn civil_round_trip() {
        for day in [-800_000, -1, 0, 1, 18_406, 20_000, 2_000_000] {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
        assert_eq!(fmt_day(18_406), "2020-05-24");
    }

    #[test]
    fn durations_and_flags() {
        assert_eq!(parse_duration("30m"), Some(1800));
        assert_eq!(parse_duration("1d"), Some(86_400));
        assert_eq!(parse_duration("0m"), None);
        assert_eq!(parse_duration("m"), None);
        assert_eq!(parse_duration("5w"), None);
        assert_eq!(fmt_duration(1800), "30 minutes");
        assert_eq!(fmt_duration(3600), "1 hour");
        assert_eq!(fmt_duration(172_800), "2 days");
        assert_eq!(fmt_duration(90), "90 seconds");
        assert_eq!(
            parse_flag_time("2020-05-24").map(fmt_secs).as_deref(),
            Some("2020-05-24T00:00:00Z")
        );
        assert_eq!(
            parse_flag_time("2020-05-24T01:02:03")
                .map(fmt_secs)
                .as_deref(),
            Some("2020-05-24T01:02:03Z")
        );
    }
}
