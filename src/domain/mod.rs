//! Typed domain values and rules: payment methods, their limits and device support, order links.

pub mod bank;
pub mod card;
pub mod carrier;
pub mod konbini;
pub mod method;
pub mod order;

pub use method::Method;

/// Merchant mode: `test` uses sandbox connectors; `live` would use real ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
