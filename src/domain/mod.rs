//! Typed domain values and rules: payment methods, their limits and device support, order links.

pub mod bank;
pub mod card;
pub mod card_form;
pub mod carrier;
pub mod events;
pub mod fees;
pub mod holidays;
pub mod jst;
pub mod konbini;
pub mod lifecycle;
pub mod message;
pub mod method;
pub mod order;
pub mod payment;
pub mod payout;
pub mod processor;
pub mod reason;
pub mod redirect;
pub mod refund_request;
pub mod repeat;
pub mod scope;
pub mod theme;
pub mod wallet;

pub use method::Method;

/// A stored value that is not one of its type's codes: rows fail to decode loudly instead of
/// falling back to a default (a corrupted `mode` must never read as anything but an error).
#[derive(Debug, thiserror::Error)]
#[error("invalid {kind} {value:?}")]
pub struct BadCode {
    pub kind: &'static str,
    pub value: String,
}

/// Declares an enum stored as a text code: `code()`, `parse()`, `ALL`, `Display`, and
/// `TryFrom<String>` (for `#[sqlx(try_from = "String")]` row fields).
macro_rules! string_enum {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $var:ident => $code:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vmeta])* $var),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$var),+];

            pub fn code(self) -> &'static str {
                match self { $($name::$var => $code),+ }
            }

            pub fn parse(s: &str) -> Option<$name> {
                match s { $($code => Some($name::$var),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.code())
            }
        }

        impl TryFrom<String> for $name {
            type Error = $crate::domain::BadCode;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                $name::parse(&s).ok_or($crate::domain::BadCode { kind: stringify!($name), value: s })
            }
        }
    };
}
pub(crate) use string_enum;

string_enum! {
    /// Merchant mode: `test` uses sandbox connectors; `live` only processor accounts.
    pub enum Mode { Test => "test", Live => "live" }
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        self.code()
    }
}

impl serde::Serialize for Mode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl<'de> serde::Deserialize<'de> for Mode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Mode::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("invalid mode {s:?}")))
    }
}

string_enum! {
    /// Whether a merchant accepts payments.
    pub enum MerchantStatus { Active => "active", Disabled => "disabled" }
}

string_enum! {
    /// Card sales: captured with the authorization (即時売上) or later by staff (仮売上).
    pub enum CaptureMode { Auto => "auto", Manual => "manual" }
}

string_enum! {
    /// Whether notifications are delivered to the merchant's callback URL (disabled after a
    /// `410 Gone` until redelivery re-enables it).
    pub enum CallbackStatus { Active => "active", Disabled => "disabled" }
}

string_enum! {
    /// Notification body format: signed JSON (Standard Webhooks) or the form-encoded
    /// compatibility mode.
    pub enum NotifyFormat { Standard => "standard", Compat => "compat" }
}

string_enum! {
    /// A checkout's state: `open` until a payment takes it (`pending` while a number or a bank /
    /// carrier page is outstanding), `paid`, `cancelled` by the merchant, or `expired`.
    pub enum CheckoutStatus {
        Open => "open",
        Pending => "pending",
        Paid => "paid",
        Cancelled => "cancelled",
        Expired => "expired",
    }
}

/// A list of methods stored as comma-separated codes; an unknown code fails to decode.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MethodList(pub Vec<Method>);

impl TryFrom<String> for MethodList {
    type Error = BadCode;
    fn try_from(s: String) -> Result<Self, BadCode> {
        Method::parse_list(&s).map(MethodList).ok_or(BadCode {
            kind: "method list",
            value: s,
        })
    }
}

string_enum! {
    /// What a console user may do. Admins and general users belong to one merchant; operators
    /// run the server and see every merchant.
    pub enum Role {
        /// Everything for their merchant: view, download, card actions, settings.
        Admin => "admin",
        /// View and download only (一般).
        General => "general",
        /// Every merchant, with admin rights.
        Operator => "operator",
    }
}

impl Role {
    pub fn as_str(self) -> &'static str {
        self.code()
    }

    pub fn label_ja(self) -> &'static str {
        match self {
            Role::Admin => "管理者",
            Role::General => "一般",
            Role::Operator => "運用者",
        }
    }

    /// The label of owner staff (テナントオプション), who hold the role for every tenant.
    pub fn label_owner_ja(self) -> &'static str {
        match self {
            Role::Admin => "オーナー管理者",
            Role::General => "オーナー一般",
            Role::Operator => "運用者",
        }
    }

    /// May change payments and settings (not only view and download).
    pub fn can_act(self) -> bool {
        matches!(self, Role::Admin | Role::Operator)
    }
}

string_enum! {
    /// A payment request's state. Only `open` and `cancelled` are stored; the others are read
    /// from its checkout (`pending` while a payment is in progress, `paid`, `expired`).
    pub enum RequestStatus {
        Open => "open",
        Pending => "pending",
        Paid => "paid",
        Expired => "expired",
        Cancelled => "cancelled",
    }
}

string_enum! {
    /// An SMS: `queued` until the provider answered, then `sent` or `failed`.
    pub enum SmsStatus { Queued => "queued", Sent => "sent", Failed => "failed" }
}

string_enum! {
    /// An API key: `active` until retired (then requests with it get 401).
    pub enum ApiKeyStatus { Active => "active", Retired => "retired" }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stored codes of roles, payment requests, SMS and API keys round-trip, and an unknown
    /// code is an error (a row that holds one fails to decode instead of getting a default).
    #[test]
    fn stored_codes_round_trip_and_unknown_codes_fail() {
        for r in Role::ALL {
            assert_eq!(Role::try_from(r.code().to_owned()).unwrap(), *r);
        }
        for s in RequestStatus::ALL {
            assert_eq!(RequestStatus::try_from(s.code().to_owned()).unwrap(), *s);
        }
        for s in SmsStatus::ALL {
            assert_eq!(SmsStatus::try_from(s.code().to_owned()).unwrap(), *s);
        }
        for s in ApiKeyStatus::ALL {
            assert_eq!(ApiKeyStatus::try_from(s.code().to_owned()).unwrap(), *s);
        }
        assert!(Role::try_from("root".to_owned()).is_err());
        assert!(RequestStatus::try_from("OPEN".to_owned()).is_err());
        assert!(SmsStatus::try_from(String::new()).is_err());
        assert!(ApiKeyStatus::try_from("revoked".to_owned()).is_err());
        assert!(!Role::General.can_act() && Role::Admin.can_act() && Role::Operator.can_act());
    }
}
