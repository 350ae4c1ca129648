//! Typed domain values and rules: payment methods, their limits and device support, order links.

pub mod bank;
pub mod card;
pub mod card_form;
pub mod carrier;
pub mod events;
pub mod konbini;
pub mod message;
pub mod method;
pub mod order;
pub mod processor;
pub mod reason;

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
