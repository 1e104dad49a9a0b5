//! The binary as a user runs it: plan / apply / import / demo / sandbox.

#[path = "../support/mod.rs"]
mod support;

mod commands;
