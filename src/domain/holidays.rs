//! Japanese national holidays (国民の祝日, 振替休日 and 国民の休日) for the payout calendar: banks
//! do not pay out on them, so a payout date that falls on one moves to the next business day.
//!
//! A table, not a crate: the well-kept Rust crate (`jpholiday` 0.2) needs a newer compiler than
//! this project builds with, and its 0.1 line brings a second date library (chrono). The table
//! holds the Cabinet Office list (内閣府「国民の祝日について」) for [`FIRST_YEAR`]..=[`LAST_YEAR`];
//! the equinox days of a year are fixed by the 官報 each February of the year before, so the
//! operator must add the next year's dates before it starts (docs/settlements.md). A unit test
//! fails once the table no longer covers the coming year.

use time::macros::date;
use time::Date;

/// The first and last year the table covers.
pub const FIRST_YEAR: i32 = 2026;
pub const LAST_YEAR: i32 = 2027;

/// Every national holiday of the covered years, in order, with its name.
const HOLIDAYS: [(Date, &str); 35] = [
    (date!(2026 - 01 - 01), "元日"),
    (date!(2026 - 01 - 12), "成人の日"),
    (date!(2026 - 02 - 11), "建国記念の日"),
    (date!(2026 - 02 - 23), "天皇誕生日"),
    (date!(2026 - 03 - 20), "春分の日"),
    (date!(2026 - 04 - 29), "昭和の日"),
    (date!(2026 - 05 - 03), "憲法記念日"),
    (date!(2026 - 05 - 04), "みどりの日"),
    (date!(2026 - 05 - 05), "こどもの日"),
    (date!(2026 - 05 - 06), "振替休日"),
    (date!(2026 - 07 - 20), "海の日"),
    (date!(2026 - 08 - 11), "山の日"),
    (date!(2026 - 09 - 21), "敬老の日"),
    (date!(2026 - 09 - 22), "国民の休日"),
    (date!(2026 - 09 - 23), "秋分の日"),
    (date!(2026 - 10 - 12), "スポーツの日"),
    (date!(2026 - 11 - 03), "文化の日"),
    (date!(2026 - 11 - 23), "勤労感謝の日"),
    (date!(2027 - 01 - 01), "元日"),
    (date!(2027 - 01 - 11), "成人の日"),
    (date!(2027 - 02 - 11), "建国記念の日"),
    (date!(2027 - 02 - 23), "天皇誕生日"),
    (date!(2027 - 03 - 21), "春分の日"),
    (date!(2027 - 03 - 22), "振替休日"),
    (date!(2027 - 04 - 29), "昭和の日"),
    (date!(2027 - 05 - 03), "憲法記念日"),
    (date!(2027 - 05 - 04), "みどりの日"),
    (date!(2027 - 05 - 05), "こどもの日"),
    (date!(2027 - 07 - 19), "海の日"),
    (date!(2027 - 08 - 11), "山の日"),
    (date!(2027 - 09 - 20), "敬老の日"),
    (date!(2027 - 09 - 23), "秋分の日"),
    (date!(2027 - 10 - 11), "スポーツの日"),
    (date!(2027 - 11 - 03), "文化の日"),
    (date!(2027 - 11 - 23), "勤労感謝の日"),
];

/// The holiday's name, if `day` is a national holiday of a covered year.
pub fn name(day: Date) -> Option<&'static str> {
    HOLIDAYS
        .binary_search_by(|(d, _)| d.cmp(&day))
        .ok()
        .map(|i| HOLIDAYS[i].1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_ordered_and_within_its_years() {
        assert!(HOLIDAYS.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(HOLIDAYS
            .iter()
            .all(|(d, _)| (FIRST_YEAR..=LAST_YEAR).contains(&d.year())));
        // 16 or 17 holidays a year since 2020, plus substitutes.
        assert_eq!(
            HOLIDAYS.iter().filter(|(d, _)| d.year() == 2026).count(),
            18
        );
        assert_eq!(
            HOLIDAYS.iter().filter(|(d, _)| d.year() == 2027).count(),
            17
        );
    }

    #[test]
    fn names_and_ordinary_days() {
        assert_eq!(name(date!(2026 - 05 - 06)), Some("振替休日"));
        assert_eq!(name(date!(2026 - 09 - 22)), Some("国民の休日"));
        assert_eq!(name(date!(2027 - 03 - 21)), Some("春分の日"));
        assert_eq!(name(date!(2026 - 05 - 07)), None);
        assert_eq!(name(date!(2026 - 12 - 31)), None);
    }

    /// The reminder to the operator: the table must cover the year after the current one,
    /// so payouts scheduled into it are right (docs/settlements.md).
    #[test]
    fn table_covers_the_coming_year() {
        let this_year = time::OffsetDateTime::now_utc().year();
        assert!(
            LAST_YEAR > this_year,
            "src/domain/holidays.rs covers holidays up to {LAST_YEAR}: add {} from the Cabinet \
             Office list",
            this_year + 1
        );
    }
}
