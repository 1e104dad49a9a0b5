//! The reconcile engine, Terraform-style: observe GHL, plan against the declared state and the
//! ledger, apply the plan. One engine for the CLI and the controllers.
//!
//! - [`desired`]: declared records, validated and normalized (pure);
//! - [`observe`]: reads GHL (network) into [`observed`] views;
//! - [`plan`]: the pure planner and its rendering;
//! - [`apply`]: executes a plan crash-safely (network + state);
//! - [`ledger`] and [`state`]: what each owner holds, and where that is kept;
//! - [`fence`]: whether this process may still write (leadership);
//! - [`ownership`]: which owner keeps a contact or a tag two of them want (pure);
//! - [`settle`]: the one step every sync ends with — decide what happens to a plan, apply it
//!   when it is to be applied;
//! - [`sync`]: one policy sync end to end, and the outcome both kinds share;
//! - [`tag_rule`]: the same pipeline for TagRules;
//! - [`targeted`]: a sync of the few contacts a webhook reported changed.

pub mod apply;
pub mod collections;
pub mod custom_fields;
pub mod desired;
pub mod fence;
pub mod fields;
pub mod ledger;
pub mod observe;
pub mod observed;
pub mod ownership;
pub mod plan;
pub mod settle;
pub mod state;
pub mod sync;
pub mod tag_rule;
pub mod targeted;

pub use sync::{Mode, SyncError, SyncOptions, SyncOutcome, sync_policy, sync_policy_owning};
