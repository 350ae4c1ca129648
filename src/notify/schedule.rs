//! Retry schedule for webhook delivery: ~3 days of back-off with jitter, honouring `Retry-After`.

use std::time::Duration;

/// Delay after attempt N fails (index N-1). Attempt 1 is sent immediately, so
/// the schedule is: now, +5 s, +5 min, +30 min, +2 h, +5 h, +10 h, +14 h, +20 h,
/// +24 h. Short early gaps ride out blips and deploys; long late gaps cover a
/// merchant server that is down over a weekend. Total ≈ 75.6 h (≈ 3.1 days).
pub const RETRY_DELAYS_S: [u64; 9] = [
    5,
    5 * 60,
    30 * 60,
    2 * 3600,
    5 * 3600,
    10 * 3600,
    14 * 3600,
    20 * 3600,
    24 * 3600,
];

/// Total attempts including the first, immediate one. After this many failures
/// the event is marked failed.
pub const MAX_ATTEMPTS: u32 = RETRY_DELAYS_S.len() as u32 + 1;

/// Upper bound on how long a receiver's `Retry-After` may push a retry out, so a
/// bogus header (e.g. a year) cannot silently park an event.
pub const RETRY_AFTER_CAP: Duration = Duration::from_secs(24 * 3600);

/// ±10% spread so many events that failed together (receiver outage) do not
/// retry in lockstep and knock the recovering receiver over again.
const JITTER_FRACTION: f64 = 0.10;

/// Delay before the next attempt after attempt `attempt_no_just_failed` (1-based)
/// failed, or `None` if that was the last one. `jitter` in `0..=1` (clamped) maps
/// linearly to a factor in `0.9..=1.1`; it is a parameter so tests are deterministic.
pub fn next_delay(attempt_no_just_failed: u32, jitter: f64) -> Option<Duration> {
    let idx = usize::try_from(attempt_no_just_failed.checked_sub(1)?).ok()?;
    let base = *RETRY_DELAYS_S.get(idx)? as f64;
    let j = if jitter.is_finite() {
        jitter.clamp(0.0, 1.0)
    } else {
        0.5
    };
    let factor = 1.0 + JITTER_FRACTION * (2.0 * j - 1.0);
    Some(Duration::from_millis(
        (base * factor * 1000.0).round() as u64
    ))
}

/// Absolute time (unix ms) of the next attempt, given `attempts_made` so far (all
/// failed), or `None` when the event should be marked failed. A receiver's
/// `Retry-After` is honoured as `max(schedule, retry_after)`, with `retry_after`
/// capped at 24 h; it never grants extra attempts.
pub fn next_attempt_ms(
    now_ms: i64,
    attempts_made: u32,
    retry_after: Option<Duration>,
    rng_jitter: f64,
) -> Option<i64> {
    let scheduled = next_delay(attempts_made, rng_jitter)?;
    let delay = match retry_after {
        Some(ra) => scheduled.max(ra.min(RETRY_AFTER_CAP)),
        None => scheduled,
    };
    let delay_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
    Some(now_ms.saturating_add(delay_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: u64 = 3600;

    #[test]
    fn schedule_without_jitter() {
        let got: Vec<u64> = (1..MAX_ATTEMPTS)
            .map(|n| next_delay(n, 0.5).unwrap().as_secs())
            .collect();
        assert_eq!(
            got,
            vec![5, 300, 1800, 2 * H, 5 * H, 10 * H, 14 * H, 20 * H, 24 * H]
        );
        assert_eq!(next_delay(MAX_ATTEMPTS, 0.5), None);
        assert_eq!(next_delay(0, 0.5), None);
        assert_eq!(next_delay(u32::MAX, 0.5), None);
    }

    #[test]
    fn total_is_about_three_days() {
        let total: u64 = RETRY_DELAYS_S.iter().sum();
        assert_eq!(MAX_ATTEMPTS, 10);
        assert!((3 * 24 * H..=80 * H).contains(&total), "{total}");
    }

    #[test]
    fn jitter_is_plus_minus_ten_percent() {
        assert_eq!(next_delay(2, 0.0), Some(Duration::from_secs(270)));
        assert_eq!(next_delay(2, 1.0), Some(Duration::from_secs(330)));
        assert_eq!(next_delay(1, 0.0), Some(Duration::from_millis(4500)));
        // Out-of-range inputs are clamped, NaN treated as no jitter.
        assert_eq!(next_delay(2, 7.0), next_delay(2, 1.0));
        assert_eq!(next_delay(2, -1.0), next_delay(2, 0.0));
        assert_eq!(next_delay(2, f64::NAN), Some(Duration::from_secs(300)));
    }

    #[test]
    fn next_attempt_plain() {
        let now = 1_700_000_000_000;
        assert_eq!(next_attempt_ms(now, 1, None, 0.5), Some(now + 5_000));
        assert_eq!(next_attempt_ms(now, 3, None, 0.5), Some(now + 1_800_000));
        assert_eq!(next_attempt_ms(now, MAX_ATTEMPTS, None, 0.5), None);
    }

    #[test]
    fn retry_after_is_max_and_capped() {
        let now = 0;
        // Longer Retry-After wins.
        let ra = Some(Duration::from_secs(120));
        assert_eq!(next_attempt_ms(now, 1, ra, 0.5), Some(120_000));
        // Shorter Retry-After does not pull the schedule in.
        assert_eq!(next_attempt_ms(now, 3, ra, 0.5), Some(1_800_000));
        // Absurd Retry-After capped at 24 h.
        let year = Some(Duration::from_secs(365 * 24 * H));
        assert_eq!(
            next_attempt_ms(now, 1, year, 0.5),
            Some(24 * H as i64 * 1000)
        );
        // The last scheduled gap is already 24 h (±10%): max keeps the schedule.
        assert_eq!(
            next_attempt_ms(now, 9, year, 1.0),
            Some(26 * H as i64 * 1000 + 1_440_000)
        );
        // Retry-After never grants an extra attempt.
        assert_eq!(next_attempt_ms(now, MAX_ATTEMPTS, ra, 0.5), None);
    }

    #[test]
    fn saturates_instead_of_overflowing() {
        assert_eq!(next_attempt_ms(i64::MAX - 1, 1, None, 0.5), Some(i64::MAX));
    }
}
