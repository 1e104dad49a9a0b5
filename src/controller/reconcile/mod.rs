//! What one reconcile does, for every kind.
//!
//! - [`pipeline`]: the one reconcile of ContactSyncPolicies and TagRules — deletion, settings,
//!   connection, prepare, sync (full, or limited to the contacts a webhook named), the verdict,
//!   the approval, status, Events and the next reconcile;
//! - [`verdict`]: the pure decision on an outcome (conditions, Events, requeue), table-tested;
//! - [`approval`]: approving a blocked plan by its hash (pure);
//! - [`status`]: the one status builder of policies and rules (pure);
//! - [`write`]: status by server-side apply, and the finalizer;
//! - [`kinds`]: what is particular to each kind — thin adapters over the engine.

pub mod approval;
pub mod kinds;
pub mod pipeline;
pub mod status;
pub mod verdict;
pub mod write;
