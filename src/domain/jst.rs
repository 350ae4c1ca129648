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
}
