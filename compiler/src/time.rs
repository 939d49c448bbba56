//! Calendar arithmetic for `@expires`, `context.time` and date literals, all in UTC.
//! Kept here rather than in a date crate: the language needs only these few conversions.

/// Seconds since 1970-01-01T00:00:00Z.
pub type Timestamp = i64;

/// Days since 1970-01-01.
pub type Days = i64;

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`.
pub fn parse_rfc3339(text: &str) -> Option<Timestamp> {
    let (date, rest) = text.split_once(['T', 't', ' '])?;
    let days = parse_date(date)?;
    let (clock, offset_seconds) = if let Some(clock) = rest.strip_suffix(['Z', 'z']) {
        (clock, 0)
    } else {
        let sign_at = rest.rfind(['+', '-'])?;
        let (clock, offset) = rest.split_at(sign_at);
        let sign = if offset.starts_with('-') { -1 } else { 1 };
        let (hours, minutes) = offset.get(1..)?.split_once(':')?;
        let hours = two_digits(hours)?;
        let minutes = two_digits(minutes)?;
        if hours > 23 || minutes > 59 {
            return None;
        }
        (clock, sign * (hours * 3600 + minutes * 60))
    };
    let clock = match clock.split_once('.') {
        Some((whole, fraction))
            if !fraction.is_empty() && fraction.bytes().all(|b| b.is_ascii_digit()) =>
        {
            whole
        }
        Some(_) => return None,
        None => clock,
    };
    let mut parts = clock.split(':');
    let hour = two_digits(parts.next()?)?;
    let minute = two_digits(parts.next()?)?;
    let second = two_digits(parts.next()?)?;
    if parts.next().is_some() || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    Some(days * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset_seconds)
}

/// Parses `YYYY-MM-DD` into days since the epoch, rejecting impossible dates.
pub fn parse_date(text: &str) -> Option<Days> {
    let mut parts = text.split('-');
    let year_text = parts.next()?;
    if year_text.len() != 4 || !year_text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let year: i64 = year_text.parse().ok()?;
    let month = two_digits(parts.next()?)?;
    let day = two_digits(parts.next()?)?;
    if parts.next().is_some()
        || !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
    {
        return None;
    }
    Some(days_from_civil(year, month, day))
}

fn two_digits(text: &str) -> Option<i64> {
    if text.len() == 2 && text.bytes().all(|b| b.is_ascii_digit()) {
        text.parse().ok()
    } else {
        None
    }
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Howard Hinnant's days-from-civil algorithm.
fn days_from_civil(year: i64, month: i64, day: i64) -> Days {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let shifted_month = (month + 9) % 12;
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn civil_from_days(days: Days) -> (i64, i64, i64) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

pub fn hour(time: Timestamp) -> i64 {
    time.rem_euclid(86_400) / 3600
}

pub fn minute(time: Timestamp) -> i64 {
    time.rem_euclid(3600) / 60
}

pub fn date(time: Timestamp) -> Days {
    time.div_euclid(86_400)
}

/// 0 = Monday … 6 = Sunday (ISO 8601 order).
pub fn weekday(time: Timestamp) -> i64 {
    (date(time) + 3).rem_euclid(7)
}

pub const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

pub fn format_date(days: Days) -> String {
    let (year, month, day) = civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02}")
}

pub fn format_rfc3339(time: Timestamp) -> String {
    let seconds = time.rem_euclid(86_400);
    format!(
        "{}T{:02}:{:02}:{:02}Z",
        format_date(date(time)),
        seconds / 3600,
        seconds % 3600 / 60,
        seconds % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_accessors() {
        let time = parse_rfc3339("2027-01-31T06:30:00Z");
        assert_eq!(
            time.map(format_rfc3339).as_deref(),
            Some("2027-01-31T06:30:00Z")
        );
        let time = time.unwrap_or_default();
        assert_eq!((hour(time), minute(time)), (6, 30));
        assert_eq!(WEEKDAYS.get(weekday(time) as usize), Some(&"sun"));
        assert_eq!(
            parse_rfc3339("2027-01-31T07:30:00+01:00"),
            parse_rfc3339("2027-01-31T06:30:00Z")
        );
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
    }

    #[test]
    fn rejects_impossible_dates() {
        assert_eq!(parse_date("2026-02-29"), None);
        assert!(parse_date("2024-02-29").is_some());
        assert_eq!(parse_rfc3339("2027-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("2027-01-01T25:00:00Z"), None);
        assert_eq!(parse_rfc3339("2027-01-01"), None);
        assert_eq!(parse_rfc3339("tomorrow"), None);
    }
}
