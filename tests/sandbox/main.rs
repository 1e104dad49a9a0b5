//! The GHL sandbox: conformance with the official spec and GHL's behaviour clients must survive.

#[path = "../support/mod.rs"]
mod support;

mod auth;
mod conformance;
mod contacts;
mod faults;
mod limits;
mod locations;
mod webhooks;
