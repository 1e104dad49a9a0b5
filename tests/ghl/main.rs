//! The GHL client against local HTTP servers and the official specs.

#[path = "../support/mod.rs"]
mod support;

mod budget;
mod malformed;
mod oauth;
mod paginate;
mod redirects;
mod requests;
mod retry;
mod spec_models;
