//! Payout cycles (精算周期): which Japan-time days a settlement period covers, and when it is
//! paid. Pure calendar arithmetic on `time::Date` (JST dates; see `domain::jst`).
//!
//! The cycles of the seeds: 月1回 / 月2回 / 月6回 (seed 001) and 月末 / 半月毎 / 10日毎 / 5日毎
//! (seed 002); 月6回 and 5日毎 are the same periods, as are 月2回 and 半月毎.

use time::{Date, Duration, Month, Weekday};

use crate::domain::string_enum;

string_enum! {
    /// How often a merchant is paid.
    pub enum Cycle {
        /// 月1回 (月末締め): the calendar month.
        MonthEnd => "month_end",
        /// 月2回 (半月毎): 1st–15th, 16th–end.
        HalfMonth => "half_month",
        /// 月3回 (10日毎): 1st–10th, 11th–20th, 21st–end.
        Every10Days => "every_10_days",
        /// 月6回 (5日毎): 1–5, 6–10, 11–15, 16–20, 21–25, 26–end.
        Every5Days => "every_5_days",
    }
}

impl Cycle {
    pub fn label_ja(self) -> &'static str {
        match self {
            Cycle::MonthEnd => "月1回（月末締め）",
            Cycle::HalfMonth => "月2回（半月毎）",
            Cycle::Every10Days => "月3回（10日毎）",
            Cycle::Every5Days => "月6回（5日毎）",
        }
    }

    /// The first day of each period in a month; the last period runs to the month's end.
    fn starts(self) -> &'static [u8] {
        match self {
            Cycle::MonthEnd => &[1],
            Cycle::HalfMonth => &[1, 16],
            Cycle::Every10Days => &[1, 11, 21],
            Cycle::Every5Days => &[1, 6, 11, 16, 21, 26],
        }
    }
}

/// One settlement period: `first..=last`, Japan-time dates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Period {
    pub first: Date,
    pub last: Date,
}

/// The period of `cycle` that holds `day`.
pub fn period_of(cycle: Cycle, day: Date) -> Period {
    let starts = cycle.starts();
    let at = starts
        .iter()
        .rposition(|s| *s <= day.day())
        .unwrap_or_default();
    let first = day.replace_day(starts[at]).unwrap_or(day);
    let last = match starts.get(at + 1) {
        Some(next) => day.replace_day(next - 1).unwrap_or(day),
        None => last_of_month(day),
    };
    Period { first, last }
}

fn last_of_month(day: Date) -> Date {
    let days = day.month().length(day.year());
    day.replace_day(days).unwrap_or(day)
}

/// The payout date of a period: `delay_days` after its last day, moved to the next business
/// day when that falls on a Saturday, a Sunday or a national holiday (`domain::holidays`; a
/// date past the table's last year moves over weekends only). 月1回 with the default 15 days
/// pays the month's collections in the middle of the next month (翌月中旬), as seed 001 says.
pub fn payout_date(period: Period, delay_days: i64) -> Date {
    let mut day = period.last + Duration::days(delay_days.max(0));
    while !is_business_day(day) {
        day += Duration::days(1);
    }
    day
}

/// Not a Saturday, a Sunday or a national holiday.
pub fn is_business_day(day: Date) -> bool {
    !matches!(day.weekday(), Weekday::Saturday | Weekday::Sunday)
        && crate::domain::holidays::name(day).is_none()
}

/// The default days between a period's end and its payout.
pub const DEFAULT_PAYOUT_DELAY_DAYS: i64 = 15;

/// `YYYY-MM-DD` of a date (as stored and shown).
pub fn ymd(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// Parses `YYYY-MM-DD`.
pub fn parse_ymd(s: &str) -> Option<Date> {
    let mut it = s.trim().splitn(3, '-');
    let y: i32 = it.next()?.parse().ok()?;
    let m: u8 = it.next()?.parse().ok()?;
    let d: u8 = it.next()?.parse().ok()?;
    Date::from_calendar_date(y, Month::try_from(m).ok()?, d).ok()
}

/// The JST date of a unix-milliseconds instant.
pub fn jst_date(ms: i64) -> Date {
    crate::domain::jst::at_ms(ms).date()
}

/// Unix milliseconds of 00:00 JST on `day`.
pub fn jst_midnight_ms(day: Date) -> i64 {
    let utc = day.midnight().assume_utc().unix_timestamp() * 1000;
    utc - crate::domain::jst::OFFSET_MS
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn p(c: Cycle, d: Date) -> (String, String) {
        let p = period_of(c, d);
        (ymd(p.first), ymd(p.last))
    }

    #[test]
    fn periods_of_each_cycle() {
        let s = |a: &str, b: &str| (a.to_owned(), b.to_owned());
        assert_eq!(
            p(Cycle::MonthEnd, date!(2026 - 02 - 14)),
            s("2026-02-01", "2026-02-28")
        );
        assert_eq!(
            p(Cycle::MonthEnd, date!(2028 - 02 - 29)),
            s("2028-02-01", "2028-02-29")
        );
        assert_eq!(
            p(Cycle::HalfMonth, date!(2026 - 11 - 15)),
            s("2026-11-01", "2026-11-15")
        );
        assert_eq!(
            p(Cycle::HalfMonth, date!(2026 - 11 - 16)),
            s("2026-11-16", "2026-11-30")
        );
        assert_eq!(
            p(Cycle::Every10Days, date!(2026 - 12 - 31)),
            s("2026-12-21", "2026-12-31")
        );
        assert_eq!(
            p(Cycle::Every10Days, date!(2026 - 12 - 10)),
            s("2026-12-01", "2026-12-10")
        );
        assert_eq!(
            p(Cycle::Every5Days, date!(2026 - 12 - 06)),
            s("2026-12-06", "2026-12-10")
        );
        assert_eq!(
            p(Cycle::Every5Days, date!(2026 - 02 - 27)),
            s("2026-02-26", "2026-02-28")
        );
    }

    #[test]
    fn payout_dates_skip_weekends() {
        // November 2026 closes on Monday the 30th; +15 = Tuesday 15 December (翌月中旬).
        let nov = period_of(Cycle::MonthEnd, date!(2026 - 11 - 01));
        assert_eq!(payout_date(nov, 15), date!(2026 - 12 - 15));
        // 1–5 December + 15 = Sunday 20 December → Monday 21st.
        let first = period_of(Cycle::Every5Days, date!(2026 - 12 - 01));
        assert_eq!(payout_date(first, 15), date!(2026 - 12 - 21));
        // + 14 = Saturday 19th → Monday 21st.
        assert_eq!(payout_date(first, 14), date!(2026 - 12 - 21));
    }

    #[test]
    fn payout_dates_skip_national_holidays() {
        let dec = period_of(Cycle::MonthEnd, date!(2026 - 12 - 01));
        // 31 December + 1 = 元日 (Friday) → Saturday, Sunday → Monday 4 January 2027.
        assert_eq!(payout_date(dec, 1), date!(2027 - 01 - 04));
        // The day before a holiday stays.
        assert_eq!(payout_date(dec, 0), date!(2026 - 12 - 31));
        // Golden Week 2026: Saturday 2 May → Sunday 3 (憲法記念日), 4, 5, 6 (振替休日) →
        // Thursday 7 May.
        let april = period_of(Cycle::MonthEnd, date!(2026 - 04 - 01));
        assert_eq!(payout_date(april, 2), date!(2026 - 05 - 07));
        assert_eq!(payout_date(april, 1), date!(2026 - 05 - 01));
        // Silver Week 2026: Monday 21 (敬老の日), 22 (国民の休日), 23 (秋分の日) → Thursday 24.
        let aug = period_of(Cycle::MonthEnd, date!(2026 - 08 - 01));
        assert_eq!(payout_date(aug, 21), date!(2026 - 09 - 24));
        // 春分の日 2027 on a Sunday: Monday 22 March is its 振替休日 → Tuesday 23.
        let feb = period_of(Cycle::MonthEnd, date!(2027 - 02 - 01));
        assert_eq!(payout_date(feb, 21), date!(2027 - 03 - 23));
        assert!(is_business_day(date!(2027 - 03 - 23)));
        assert!(!is_business_day(date!(2027 - 03 - 22)));
    }

    #[test]
    fn dates_round_trip_and_midnight_is_jst() {
        let d = parse_ymd("2026-12-01").unwrap();
        assert_eq!(ymd(d), "2026-12-01");
        assert_eq!(jst_midnight_ms(d), 1_796_050_800_000);
        assert_eq!(jst_date(1_796_050_800_000), d);
        assert_eq!(jst_date(1_796_050_800_000 - 1), date!(2026 - 11 - 30));
        assert!(parse_ymd("2026-02-30").is_none());
        assert!(parse_ymd("x").is_none());
    }
}
