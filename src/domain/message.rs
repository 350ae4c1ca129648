//! Messages to shoppers (docs/messages.md): what kinds exist, on which channel, their delivery
//! states, which payment event queues which message, and how an SMTP reply is classed.

use crate::domain::string_enum;

string_enum! {
    /// What a message tells the shopper.
    pub enum MessageKind {
        /// The konbini / Pay-easy number, its deadline and how to pay.
        Instructions => "instructions",
        /// The same, some hours before the deadline, while still unpaid.
        Reminder => "reminder",
        /// The payment completed (or was captured).
        Receipt => "receipt",
        Refund => "refund",
        Cancellation => "cancellation",
        /// A refund request (返金依頼) of a cash payment: the signed link to the page where the
        /// shopper gives the bank account to receive the money. E-mail only (the link does not
        /// fit in an SMS with the text around it).
        RefundRequest => "refund_request",
        /// A payment request (決済依頼) sent by e-mail: the order, the amount and the link to
        /// pay, before any payment exists.
        PaymentRequest => "payment_request",
    }
}

string_enum! {
    pub enum Channel { Email => "email", Sms => "sms" }
}

string_enum! {
    /// Where a message is in its delivery.
    pub enum MessageStatus {
        Pending => "pending",
        Sent => "sent",
        /// Refused for good (5xx), or temporary refusals until the retries ran out.
        Failed => "failed",
        /// A reminder whose payment was paid, expired or cancelled before it was due.
        Cancelled => "cancelled",
    }
}

string_enum! {
    /// Where the recipient's address came from.
    pub enum MessageSource {
        /// The signed link's `shopper_email` / `shopper_phone`.
        Link => "link",
        /// Typed by the shopper on the number page ("send these instructions to my e-mail").
        Form => "form",
        /// A console user's resend, or an address staff typed (a refund request's e-mail).
        Staff => "staff",
    }
}

impl MessageKind {
    /// Only instructions and reminders go out by SMS: receipts and notices need more than 70
    /// characters to be useful.
    pub fn sms_allowed(self) -> bool {
        matches!(self, MessageKind::Instructions | MessageKind::Reminder)
    }
}

/// What a payment event (`domain::events`) does to a payment's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPlan {
    /// The message queued now, if any.
    pub send: Option<MessageKind>,
    /// Queue a reminder before the deadline (only when a number was issued).
    pub remind: bool,
}

/// The messages an event queues. Reminders still pending are cancelled by any change that
/// leaves the payment no longer awaiting payment (see `db::messages`).
pub fn plan_for_event(event: &str) -> EventPlan {
    let none = EventPlan {
        send: None,
        remind: false,
    };
    match event {
        "konbini.issued" | "payeasy.issued" => EventPlan {
            send: Some(MessageKind::Instructions),
            remind: true,
        },
        "konbini.paid" | "payeasy.paid" | "payment.completed" | "payment.captured" => EventPlan {
            send: Some(MessageKind::Receipt),
            ..none
        },
        "payment.refunded" => EventPlan {
            send: Some(MessageKind::Refund),
            ..none
        },
        "payment.cancelled" => EventPlan {
            send: Some(MessageKind::Cancellation),
            ..none
        },
        _ => none,
    }
}

/// Reminder lead times a merchant may choose, in hours (0 = off).
pub const REMINDER_HOURS: [i64; 3] = [0, 24, 48];

/// When the reminder for a deadline goes out, or `None` when reminders are off or that moment
/// has already passed (a reminder is never sent late: the instructions just went out).
pub fn reminder_at(deadline_ms: i64, hours: i64, now_ms: i64) -> Option<i64> {
    if hours <= 0 {
        return None;
    }
    let at = deadline_ms - hours * 3_600_000;
    (at > now_ms).then_some(at)
}

/// How an SMTP (or gateway) refusal is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 4xx, a dropped connection, a timeout: try again later.
    Temporary,
    /// 5xx: the server will never take this message (bad address, policy).
    Permanent,
}

/// Attempts at most before a message that keeps being refused temporarily is given up.
pub const MAX_ATTEMPTS: i64 = 8;

/// Delay before attempt `attempts + 1` after a temporary refusal: 1, 2, 4 … minutes, at most
/// six hours.
pub fn retry_delay_ms(attempts: i64) -> i64 {
    let minutes = 1i64 << attempts.clamp(0, 9);
    (minutes * 60_000).min(6 * 3_600_000)
}

/// A light check of a shopper-typed e-mail address: one `@`, something on both sides, a dot in
/// the domain, no spaces or header-breaking characters, at most 254 characters. The SMTP server
/// has the last word.
pub fn valid_email(s: &str) -> bool {
    let s = s.trim();
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    s.len() <= 254
        && !local.is_empty()
        && local.len() <= 64
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && s.chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '<' | '>' | '"' | ',' | ';' | '\\'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_map_to_messages() {
        assert_eq!(
            plan_for_event("konbini.issued").send,
            Some(MessageKind::Instructions)
        );
        assert!(plan_for_event("payeasy.issued").remind);
        assert_eq!(
            plan_for_event("konbini.paid").send,
            Some(MessageKind::Receipt)
        );
        assert_eq!(plan_for_event("payment.authorized").send, None);
        assert_eq!(plan_for_event("konbini.confirmed").send, None);
    }

    #[test]
    fn reminder_never_late() {
        let h = 3_600_000;
        assert_eq!(reminder_at(100 * h, 24, 0), Some(76 * h));
        assert_eq!(reminder_at(100 * h, 0, 0), None);
        assert_eq!(reminder_at(100 * h, 48, 60 * h), None);
    }

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(retry_delay_ms(0), 60_000);
        assert_eq!(retry_delay_ms(1), 120_000);
        assert_eq!(retry_delay_ms(20), 6 * 3_600_000);
    }

    #[test]
    fn email_check() {
        assert!(valid_email("hanako@example.jp"));
        assert!(!valid_email("hanako@localhost"));
        assert!(!valid_email("a b@example.jp"));
        assert!(!valid_email("x@example.jp\r\nBcc: y@example.jp"));
        assert!(!valid_email("<x@example.jp>"));
    }
}
