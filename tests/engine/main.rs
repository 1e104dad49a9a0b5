//! The engine end to end against the sandbox.

#[path = "../support/mod.rs"]
mod support;

mod conflicts;
mod converge;
mod crash;
mod custom_fields;
mod drift;
mod faults;
mod feed;
mod prune;
mod rule_items;
mod sources;
mod targeted;
