//! Typed domain values and rules: payment methods, their limits and device support, order links.

pub mod bank;
pub mod card;
pub mod carrier;
pub mod konbini;
pub mod method;
pub mod order;
pub mod processor;

pub use method::Method;

/// Merchant mode: `test` uses sandbox connectors; `live` only processor accounts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Test,
    Live,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Test => "test",
            Mode::Live => "live",
        }
    }
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "test" => Some(Mode::Test),
            "live" => Some(Mode::Live),
            _ => None,
        }
    }
}
