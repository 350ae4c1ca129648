//! Connectors: one trait per method family, each with a sandbox implementation that is the
//! documented test mode. A processor (Stripe, KOMOJU) implements the same traits through a
//! driver; flows get every connector from the [`registry`].

pub mod bank;
pub mod card;
pub mod carrier;
pub mod client_card;
pub mod driver;
pub mod error;
pub mod komoju;
pub mod konbini;
pub mod redirect;
pub mod registry;
pub mod signed_return;
pub mod stripe;
pub mod wallet;
pub mod webhook;
