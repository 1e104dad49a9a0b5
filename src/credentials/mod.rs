//! Credentials: where a connection's access token comes from and how it stays valid.
//!
//! - [`pit`]: Private Integration Tokens from the user's Secret, with their age;
//! - [`oauth`]: the OAuth lifecycle (code exchange, single-flight refresh, agency → location tokens);
//! - [`token_secret`]: the operator-managed token Secret's format and the refresh claim;
//! - [`schedule`]: when to renew (pure functions);
//! - [`consumers`]: the consumer Secret and rollout restarts of dependent workloads;
//! - [`failpoint`]: crash points for the crash tests;
//! - [`Problem`]: why a credential cannot be used now.

pub mod consumers;
pub mod failpoint;
pub mod keys;
pub mod oauth;
pub mod pit;
mod problem;
pub mod schedule;
pub mod token_secret;

pub use problem::Problem;
