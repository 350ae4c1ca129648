//! Integration tests: each starts the real server on a random port with its own database and
//! speaks HTTP to it. Every test runs on SQLite and on PostgreSQL (see `helpers::both!`).

mod helpers;

mod api_v1;
mod card;
mod checkout;
mod notify;
mod sms;
mod vectors;
