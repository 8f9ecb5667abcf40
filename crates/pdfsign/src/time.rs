//! Calendar arithmetic for the few time formats the façade reads and writes: RFC 3339
//! (command line, JSON), PDF dates (`/M`, ISO 32000-1 section 7.9.4). No time-zone
//! database is needed: both formats carry their UTC offset.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date of a day count since 1970-01-01 (`civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// Seconds since the epoch of a date and time at a UTC offset, if the fields are in range.
fn to_unix(fields: [i64; 6], offset_seconds: i64) -> Option<i64> {
    let [year, month, day, hour, minute, second] = fields;
    let month = u32::try_from(month).ok().filter(|m| (1..=12).contains(m))?;
    let day = u32::try_from(day)
        .ok()
        .filter(|&d| d >= 1 && d <= days_in_month(year, month))?;
    if !(0..=23).contains(&hour) || !(0..=59).contains(&minute) || !(0..=60).contains(&second) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(days * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset_seconds)
}

fn from_unix(seconds: i64) -> Option<SystemTime> {
    if seconds >= 0 {
        UNIX_EPOCH.checked_add(Duration::from_secs(seconds.unsigned_abs()))
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_secs(seconds.unsigned_abs()))
    }
}

/// Seconds since the epoch (negative before 1970).
pub(crate) fn unix_seconds(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

fn digits(text: &str, range: std::ops::Range<usize>) -> Option<i64> {
    let part = text.get(range)?;
    if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    part.parse().ok()
}

/// Parses an RFC 3339 date-time, `2025-06-01T12:00:00Z` or `2025-06-01T14:00:00+02:00`
/// (fractions of a second are accepted and dropped; `t`, `z` and a space for `T` too).
pub fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let b = text.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let fields = [
        digits(text, 0..4)?,
        digits(text, 5..7)?,
        digits(text, 8..10)?,
        digits(text, 11..13)?,
        digits(text, 14..16)?,
        digits(text, 17..19)?,
    ];
    let mut rest = &text[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let end = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if end == 0 {
            return None;
        }
        rest = &fraction[end..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            if rest.len() != 6 || rest.as_bytes()[3] != b':' {
                return None;
            }
            let (hours, minutes) = (digits(rest, 1..3)?, digits(rest, 4..6)?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            sign * (hours * 3600 + minutes * 60)
        }
    };
    from_unix(to_unix(fields, offset)?)
}

/// Formats a time as RFC 3339 in UTC, whole seconds: `2025-06-01T12:00:00Z`.
pub fn format_rfc3339(time: SystemTime) -> String {
    let seconds = unix_seconds(time);
    let (days, rem) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Parses a PDF date string (ISO 32000-1 section 7.9.4): `D:YYYYMMDDHHmmSSOHH'mm'`, where
/// everything after the year is optional, `O` is `+`, `-` or `Z`, and the apostrophes are
/// often missing or trailing.
pub fn parse_pdf_date(text: &str) -> Option<SystemTime> {
    let text = text.strip_prefix("D:").unwrap_or(text);
    let end = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, rest) = text.split_at(end);
    if number.len() < 4 || number.len() % 2 != 0 || number.len() > 14 {
        return None;
    }
    let field = |range: std::ops::Range<usize>, default: i64| {
        if number.len() >= range.end {
            digits(number, range)
        } else {
            Some(default)
        }
    };
    let fields = [
        digits(number, 0..4)?,
        field(4..6, 1)?,
        field(6..8, 1)?,
        field(8..10, 0)?,
        field(10..12, 0)?,
        field(12..14, 0)?,
    ];
    let offset = match rest.as_bytes().first() {
        None | Some(b'Z') => 0,
        Some(&sign @ (b'+' | b'-')) => {
            let zone: String = rest[1..].chars().filter(|c| c.is_ascii_digit()).collect();
            let hours = if zone.len() >= 2 {
                digits(&zone, 0..2)?
            } else {
                0
            };
            let minutes = if zone.len() >= 4 {
                digits(&zone, 2..4)?
            } else {
                0
            };
            let sign = if sign == b'-' { -1 } else { 1 };
            sign * (hours * 3600 + minutes * 60)
        }
        Some(_) => return None,
    };
    from_unix(to_unix(fields, offset)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_known_values() {
        let t = parse_rfc3339("2025-06-01T12:34:56Z").unwrap();
        assert_eq!(unix_seconds(t), 1_748_781_296);
        assert_eq!(format_rfc3339(t), "2025-06-01T12:34:56Z");
        assert_eq!(parse_rfc3339("2025-06-01T14:34:56.123+02:00"), Some(t));
        assert_eq!(parse_rfc3339("2025-06-01 12:34:56z"), Some(t));
        assert_eq!(format_rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            format_rfc3339(parse_rfc3339("1969-12-31T23:59:59Z").unwrap()),
            "1969-12-31T23:59:59Z"
        );
        assert_eq!(
            format_rfc3339(parse_rfc3339("2024-02-29T00:00:00Z").unwrap()),
            "2024-02-29T00:00:00Z"
        );
        for bad in [
            "2025-02-29T00:00:00Z",
            "2025-13-01T00:00:00Z",
            "2025-06-01T24:00:00Z",
            "2025-06-01",
            "2025-06-01T12:00:00",
            "2025-06-01T12:00:00+2:00",
            "x025-06-01T12:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn pdf_dates() {
        let t = parse_rfc3339("2025-06-01T12:34:56Z").unwrap();
        assert_eq!(parse_pdf_date("D:20250601123456Z"), Some(t));
        assert_eq!(parse_pdf_date("D:20250601143456+02'00'"), Some(t));
        assert_eq!(parse_pdf_date("D:20250601143456+02'00"), Some(t));
        assert_eq!(parse_pdf_date("20250601103456-02'00'"), Some(t));
        assert_eq!(
            parse_pdf_date("D:2025"),
            parse_rfc3339("2025-01-01T00:00:00Z")
        );
        assert_eq!(parse_pdf_date("D:20251"), None);
        assert_eq!(parse_pdf_date("D:20250230"), None);
        assert_eq!(parse_pdf_date("D:20250601123456X"), None);
    }

    #[test]
    fn days_agree_both_ways() {
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
