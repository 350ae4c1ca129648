//! Payment-method flows: domain-level services that tie checkouts, connectors and the payments
//! store together. Route handlers stay thin and call these.

pub mod konbini;
