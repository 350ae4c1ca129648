//! Integration tests: each starts the real server on a random port with its own database and
//! speaks HTTP to it. Every test runs on SQLite and on PostgreSQL (see `helpers::both!`).

mod helpers;
#[path = "../support/skip.rs"]
mod skip;

mod api_v1;
mod bank;
mod bank_transfer;
mod bench_limit;
mod card;
mod card_form;
mod card_testing;
mod carrier;
mod checkout;
mod console;
mod console_admin;
mod console_ops;
mod console_search;
mod console_themes;
mod deploy;
mod docs_drift;
mod feature_phone;
mod first_hour;
mod handoff;
mod hardening;
mod held_cards;
mod komoju;
mod komoju_bank_transfer;
mod komoju_card;
mod komoju_carrier;
mod komoju_fake;
mod komoju_wallet;
mod konbini;
mod live;
mod messages;
mod notify;
mod ops;
mod redirect_methods;
mod repeat;
mod settlement_api;
mod settlements;
mod shopper;
mod shutdown;
mod sms;
mod smtp_fake;
mod stripe;
mod stripe_installments;
mod stripe_konbini;
mod stripe_konbini_fake;
mod stripe_saved_cvc;
mod tenants;
mod vectors;
mod wallet;
mod write_batching;
