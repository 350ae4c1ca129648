//! Small shared helpers: clock, random identifiers.

use rand::Rng;

/// The system clock as unix milliseconds (all stored timestamps use this unit). Only
/// `context::SystemClock` and code with no app context (the command line, a fresh process)
/// read it; everything else asks `Ctx::now_ms`, so tests can move time.
pub fn now_ms() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos() as i64 / 1_000_000
}

/// A random identifier `prefix_` + `len` characters of lowercase base32 (no ambiguous letters),
/// from the OS-seeded thread RNG. 20 characters carry 100 bits: unguessable.
pub fn random_id(prefix: &str, len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let mut rng = rand::thread_rng();
    let mut s = String::with_capacity(prefix.len() + 1 + len);
    s.push_str(prefix);
    s.push('_');
    for _ in 0..len {
        s.push(ALPHABET[rng.gen_range(0..ALPHABET.len())] as char);
    }
    s
}

/// A random secret: `prefix` + 43 base64url characters (32 random bytes).
pub fn random_secret(prefix: &str) -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::thread_rng().gen();
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// Formats yen with thousands separators: 1234567 -> "1,234,567".
pub fn format_yen(amount: i64) -> String {
    let digits = amount.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if amount < 0 {
        out.push('-');
    }
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Unix milliseconds as a Japan-time date and time.
pub fn jst_datetime(ms: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .to_offset(time::macros::offset!(+9))
}

/// Formats unix milliseconds as Japan time `YYYY/MM/DD HH:MM`.
pub fn format_jst(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .to_offset(crate::domain::jst::OFFSET);
    format!(
        "{:04}/{:02}/{:02} {:02}:{:02}",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute()
    )
}

/// Unix milliseconds as RFC 3339 in Japan time, e.g. `2026-04-01T12:34:56+09:00`.
pub fn rfc3339_jst(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .to_offset(crate::domain::jst::OFFSET)
        .replace_nanosecond(0)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// `base` with the already encoded `query` appended to its query string, built with the `url`
/// crate so the parameters land before any `#fragment` (after it, the browser would never
/// send them). A `base` that does not parse as a URL (stored before the checks) gets the
/// query inserted before its fragment by hand.
pub fn append_query(base: &str, query: &str) -> String {
    match url::Url::parse(base) {
        Ok(mut u) => {
            let q = match u.query() {
                Some(existing) if !existing.is_empty() => format!("{existing}&{query}"),
                _ => query.to_owned(),
            };
            u.set_query(Some(&q));
            u.to_string()
        }
        Err(_) => {
            let (head, fragment) = match base.split_once('#') {
                Some((h, f)) => (h, Some(f)),
                None => (base, None),
            };
            let sep = if head.contains('?') { '&' } else { '?' };
            match fragment {
                Some(f) => format!("{head}{sep}{query}#{f}"),
                None => format!("{head}{sep}{query}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yen_formatting() {
        assert_eq!(format_yen(0), "0");
        assert_eq!(format_yen(999), "999");
        assert_eq!(format_yen(1000), "1,000");
        assert_eq!(format_yen(1234567), "1,234,567");
    }

    #[test]
    fn jst_formatting() {
        // 2026-01-01T00:00:00Z is 09:00 in Japan.
        assert_eq!(format_jst(1_767_225_600_000), "2026/01/01 09:00");
    }

    #[test]
    fn rfc3339() {
        assert_eq!(rfc3339_jst(1_767_225_600_000), "2026-01-01T09:00:00+09:00");
    }

    #[test]
    fn ids_are_distinct_and_shaped() {
        let a = random_id("co", 20);
        let b = random_id("co", 20);
        assert_ne!(a, b);
        assert_eq!(a.len(), 23);
        assert!(a.starts_with("co_"));
    }
}
