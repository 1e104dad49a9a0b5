//! The reconcile engine, Terraform-style: observe GHL, plan against the declared state and the
//! ledger, settle the plan (apply it when the mode and the safety limits allow). One engine for
//! the CLI and the operator; nothing here knows about controllers or processes.
//!
//! - [`desired`]: declared records, validated and normalized (pure);
//! - [`observe`]: reads GHL (network) into [`observed`] views;
//! - [`plan`]: the pure planner, its model, rendering and digest (the hash approvals name);
//! - [`settle`]: the one step every sync ends with — decide what happens to a plan (in sync,
//!   report, block, apply), and apply it only when that is the decision;
//! - [`apply`]: carries a plan out crash-safely (network + ledger journal);
//! - [`ledger`], [`state`]: what each owner holds in GHL, and where that is kept (a local
//!   file for the CLI, Secrets owned by the policy or rule in the operator);
//! - [`fence`]: whether this process may still write (it holds the Lease behind the object);
//! - [`ownership`]: which owner keeps a record or a tag two of them declare (pure);
//! - [`custom_fields`]: custom field keys resolved to each location's ids;
//! - [`sync`]: one full sync of a policy, and the outcome and errors every sync shares;
//! - [`targeted`]: a sync limited to the contacts a webhook named (GET, plan, journal);
//! - [`tag_rule`]: the same pipeline for TagRules, and a rule's removal on deletion.

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
