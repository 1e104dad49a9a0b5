//! The engine end to end against the sandbox.

#[path = "../support/mod.rs"]
mod support;

mod converge;
mod crash;
mod drift;
mod faults;
mod prune;
