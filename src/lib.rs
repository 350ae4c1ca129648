//! Kakehashi: an open-source hosted checkout ("link type" / リンクタイプ) for Japanese merchants.
//!
//! A merchant's cart sends the shopper here with a signed order link ([`signing`]); we verify it,
//! pick a layout for the shopper's device ([`device`]), render a payment-method selector themed
//! with the merchant's logo ([`themes`]), and drive the chosen method's flow.
#![forbid(unsafe_code)]

pub mod api;
pub mod assets;
pub mod badges;
pub mod cli;
pub mod client_addr;
pub mod clock;
pub mod config;
pub mod connectors;
pub mod console;
pub mod context;
pub mod db;
pub mod device;
pub mod domain;
pub mod error;
pub mod error_shop;
pub mod flows;
pub mod form;
pub mod mail;
pub mod messages;
pub mod notify;
pub mod pages;
pub mod render;
pub mod reports;
pub mod request_id;
pub mod routes;
pub mod secrets;
pub mod security;
pub mod session;
pub mod signing;
pub mod sms;
pub mod ssrf;
pub mod startup;
pub mod state;
pub mod supervisor;
pub mod telemetry;
pub mod themes;
pub mod util;
