//! Every notification `type` the server sends. docs/notifications.md lists each one; the docs
//! drift test (tests/api/docs_drift.rs) reads this list, and the checks below keep it complete.

/// Every `type` a merchant's endpoint can receive.
pub const ALL: &[&str] = &[
    "payment.challenge_required",
    "payment.authorized",
    "payment.captured",
    "payment.cancelled",
    "payment.refunded",
    "payment.failed",
    "payment.expired",
    "payment.completed",
    "payment.refund_requested",
    "payment.refund_account_received",
    "payment.refund_paid",
    "payment.refund_request_cancelled",
    "konbini.issued",
    "konbini.paid",
    "konbini.confirmed",
    "konbini.reversed",
    "konbini.late_paid",
    "payeasy.issued",
    "payeasy.paid",
    "payeasy.confirmed",
    "payeasy.reversed",
    "payeasy.late_paid",
    "bank_transfer.issued",
    "bank_transfer.paid",
    "bank_transfer.confirmed",
    "bank_transfer.reversed",
    "bank_transfer.late_paid",
    "subscription.charged",
    "subscription.cancelled",
    "settlement.created",
    "ping",
];

/// Names shaped like notification types that are never sent: `payment.created` is written to
/// the payment's own event log only, and `payment.updated` is the fallback of a status change
/// without a type of its own, which no flow reaches.
#[cfg(test)]
const NEVER_SENT: &[&str] = &["payment.created", "payment.updated"];

/// Whether `kind` is a documented notification type (checked whenever one is queued).
pub fn is_known(kind: &str) -> bool {
    ALL.contains(&kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// Every string literal in src/ shaped like a notification type (`"konbini.paid"`, with
    /// one of the prefixes above) is in `ALL`: a new event type cannot be added to a flow
    /// without being listed, and so documented.
    #[test]
    fn every_event_literal_in_the_source_is_listed() {
        let mut prefixes: Vec<&str> = ALL
            .iter()
            .filter_map(|t| t.split_once('.'))
            .map(|p| p.0)
            .collect();
        prefixes.sort_unstable();
        prefixes.dedup();
        let mut files = Vec::new();
        rust_files(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut files,
        );
        let mut found = std::collections::BTreeSet::new();
        for file in &files {
            let text = std::fs::read_to_string(file).unwrap();
            for prefix in &prefixes {
                let needle = format!("\"{prefix}.");
                for (at, _) in text.match_indices(&needle) {
                    let rest = &text[at + needle.len()..];
                    let name: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                        .collect();
                    if !name.is_empty() && rest[name.len()..].starts_with('"') {
                        found.insert((format!("{prefix}.{name}"), file.display().to_string()));
                    }
                }
            }
        }
        assert!(found.len() > 10, "the scan finds the flows' event types");
        for (kind, file) in &found {
            assert!(
                ALL.contains(&kind.as_str()) || NEVER_SENT.contains(&kind.as_str()),
                "{kind} (in {file}) is not in domain::events::ALL: add it there and to docs/notifications.md"
            );
        }
    }

    #[test]
    fn types_are_unique() {
        let mut v = ALL.to_vec();
        v.sort_unstable();
        v.dedup();
        assert_eq!(v.len(), ALL.len());
    }
}
