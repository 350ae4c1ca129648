//! Japan Standard Time: the calendar every deadline, monthly limit and date shown here uses.
//! JST is a fixed UTC+9 offset with no daylight saving, so plain arithmetic is exact.

use time::{OffsetDateTime, UtcOffset};

/// UTC+9.
pub const OFFSET: UtcOffset = time::macros::offset!(+9);

/// The offset in milliseconds, for day arithmetic on unix milliseconds.
pub const OFFSET_MS: i64 = 9 * 60 * 60 * 1000;

/// Milliseconds in a day.
pub const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// A unix-milliseconds instant as a JST date-time (the epoch for out-of-range values, which
/// only corrupted data could hold).
pub fn at_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .to_offset(OFFSET)
}

const WEEKDAYS_JA: [&str; 7] = ["月", "火", "水", "木", "金", "土", "日"];
const WEEKDAYS_EN: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const MONTHS_EN: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// The weekday's short name: `火` / `Tue`.
pub fn weekday(t: OffsetDateTime, en: bool) -> &'static str {
    let days = if en { WEEKDAYS_EN } else { WEEKDAYS_JA };
    days[usize::from(t.weekday().number_days_from_monday())]
}

/// An instant as shoppers read it, in JST with the weekday (pages and messages alike):
/// `2026年12月8日(火) 23:59` / `Tue 8 Dec 2026, 23:59`.
pub fn shopper_text(ms: i64, en: bool) -> String {
    let t = at_ms(ms);
    if en {
        format!(
            "{} {} {} {}, {:02}:{:02}",
            weekday(t, true),
            t.day(),
            MONTHS_EN[usize::from(u8::from(t.month())) - 1],
            t.year(),
            t.hour(),
            t.minute()
        )
    } else {
        format!(
            "{}年{}月{}日({}) {:02}:{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            weekday(t, false),
            t.hour(),
            t.minute()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn midnight_jst_is_fifteen_utc() {
        // 2026-12-01 00:00 JST = 2026-11-30 15:00 UTC.
        let t = at_ms(1_796_050_800_000);
        assert_eq!(
            (t.year(), u8::from(t.month()), t.day(), t.hour()),
            (2026, 12, 1, 0)
        );
        assert_eq!(OFFSET.whole_hours(), 9);
        assert_eq!(OFFSET_MS, i64::from(OFFSET.whole_seconds()) * 1000);
    }

    #[test]
    fn shopper_text_has_the_weekday_in_both_languages() {
        // 2026-12-08 23:59 JST, a Tuesday.
        let ms = 1_796_050_800_000 + 7 * DAY_MS + (23 * 60 + 59) * 60_000;
        assert_eq!(shopper_text(ms, false), "2026年12月8日(火) 23:59");
        assert_eq!(shopper_text(ms, true), "Tue 8 Dec 2026, 23:59");
        assert_eq!(weekday(at_ms(ms + DAY_MS), false), "水");
    }
}
