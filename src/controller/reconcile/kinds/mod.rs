//! The kinds: what is particular to each, as adapters the [pipeline](super::pipeline) (or, for
//! connections, their own check → verdict → status) drives. A kind never imports another.
//!
//! - [`policy`]: a ContactSyncPolicy's records, read and validated, declared on its location,
//!   and synced through [`crate::engine::sync`];
//! - [`tag_rule`]: a TagRule's selector and tags, synced through [`crate::engine::tag_rule`];
//! - [`connection`]: a GhlConnection's settings, credential and GHL checked, its change feed
//!   configured.

pub mod connection;
pub mod policy;
pub mod tag_rule;
