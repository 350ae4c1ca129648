//! Connectors: one trait per method family, each with a sandbox implementation that is the
//! documented test mode. A live acquirer or PSP adapter implements the same trait.

pub mod bank;
pub mod card;
pub mod carrier;
pub mod konbini;
