//! Payment processors (決済代行) whose public APIs take real money, and the method families a
//! connector serves. A merchant's live methods are exactly those a processor account backs.

use crate::domain::{string_enum, Method, Mode};

string_enum! {
    /// A processor a merchant can hold an account with.
    pub enum Processor { Stripe => "stripe", Komoju => "komoju" }
}

impl Processor {
    pub fn name(self) -> &'static str {
        match self {
            Processor::Stripe => "Stripe",
            Processor::Komoju => "KOMOJU",
        }
    }

    /// The methods the processor's public API offers for JPY payments in Japan: Stripe takes
    /// cards and konbini; KOMOJU also Pay-easy, online banking, the three carriers and wallets.
    pub fn offers(self, m: Method) -> bool {
        match self {
            Processor::Stripe => matches!(m, Method::Card | Method::Konbini),
            Processor::Komoju => true,
        }
    }
}

/// The connector families: one connector trait each. Konbini and Pay-easy share the number
/// connector; the three carriers share the carrier connector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    Card,
    Number,
    Bank,
    Carrier,
    Wallet,
}

impl Family {
    pub fn of(m: Method) -> Family {
        match m {
            Method::Card => Family::Card,
            Method::Konbini | Method::Payeasy | Method::BankTransfer => Family::Number,
            Method::Banknet => Family::Bank,
            Method::Docomo | Method::Au | Method::Softbank => Family::Carrier,
            Method::Wallet => Family::Wallet,
        }
    }
}

string_enum! {
    /// Whether a processor account is used for new payments (`active`) or only kept so earlier
    /// payments can still be captured, cancelled and refunded through it (`retired`).
    pub enum AccountStatus { Active => "active", Retired => "retired" }
}

/// Which connector served a payment, stored on the payment (`payments.connector`): later
/// actions (capture, refund, returns, monthly charges) go through the same one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectorId {
    /// The built-in sandbox: test mode only.
    Sandbox,
    /// A processor account, by its id.
    Account(String),
}

impl ConnectorId {
    pub const SANDBOX: &'static str = "sandbox";

    pub fn as_str(&self) -> &str {
        match self {
            ConnectorId::Sandbox => Self::SANDBOX,
            ConnectorId::Account(id) => id,
        }
    }
    pub fn parse(s: &str) -> ConnectorId {
        if s == Self::SANDBOX {
            ConnectorId::Sandbox
        } else {
            ConnectorId::Account(s.to_owned())
        }
    }
}

/// A processor account as stored. `credentials` and `webhook_secret` are sealed values
/// (`crate::secrets`); only the connector registry opens them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessorAccount {
    pub id: String,
    pub merchant_id: String,
    pub processor: Processor,
    pub mode: Mode,
    pub methods: Vec<Method>,
    pub credentials: String,
    pub webhook_secret: Option<String>,
    pub fingerprint: String,
    pub status: AccountStatus,
    pub created_at: i64,
}

impl ProcessorAccount {
    /// The associated data a sealed column of an account is bound to, so a sealed value copied
    /// into another row or column does not open.
    pub fn seal_context(account_id: &str, column: &str) -> String {
        format!("processor_accounts:{account_id}:{column}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_cover_every_method() {
        assert_eq!(Family::of(Method::Payeasy), Family::Number);
        assert_eq!(Family::of(Method::Au), Family::Carrier);
        assert!(Processor::Komoju.offers(Method::Docomo));
        assert!(!Processor::Stripe.offers(Method::Docomo));
        for p in Processor::ALL {
            assert_eq!(Processor::parse(p.code()), Some(*p));
        }
        assert_eq!(ConnectorId::parse("sandbox"), ConnectorId::Sandbox);
        assert_eq!(ConnectorId::parse("pa_x").as_str(), "pa_x");
    }
}
