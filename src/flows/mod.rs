//! Payment-method flows that span several requests: the shopper leaves for a bank or carrier
//! page and comes back with a signed result.

pub mod bank;
pub mod carrier;
pub mod redirect;
