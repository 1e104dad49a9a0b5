//! The operator: one kube-runtime controller per kind, sharing a [`context::Context`].
//!
//! Every ContactSyncPolicy and TagRule goes through one [`pipeline`]: prepare (what it declares,
//! published for the other owners on its location) → sync through the engine → a pure
//! [`verdict`] → status, Events and the next reconcile. GhlConnections go through the same
//! shape in [`connection`] (check → verdict → shell).
//!
//! - [`pipeline`], [`verdict`]: the shared reconcile and its decisions (pure, table-tested);
//! - [`policy`], [`tag_rule`], [`connection`]: what is particular to each kind;
//! - [`reference`]: where an object stands with the connection it names;
//! - [`ownership`]: who wants what on each location (conflicts between objects);
//! - [`connections`]: one GHL client and budget per GhlConnection, readiness broadcast;
//! - [`ledger_store`]: policies' and rules' ledgers in Secrets they own;
//! - [`triggers`]: what else makes an object reconcile;
//! - [`events`], [`feeds`], [`targeted`], [`targets`]: what GHL's webhooks cause — the change
//!   feeds, targeted syncs of the contacts they name, wake-ups;
//! - [`installed`]: an agency grant's installed locations (listed, summarised for status);
//! - [`status`], [`conditions`], [`object`]: writing status and finalizers, the conditions
//!   contract, typed object keys;
//! - [`backoff`], [`error`]: per-object backoff and the error policy;
//! - [`run`], [`wiring`], [`scope`], [`leader`], [`server`], [`metrics`]: the process, the
//!   controllers' wiring and the namespaces they watch, Lease election, `/metrics` `/healthz`
//!   `/readyz`;
//! - [`shards`]: `--shards`, the locations split over shard Leases the replicas divide.

pub mod approval;
pub mod backoff;
pub mod conditions;
pub mod connection;
pub mod connections;
pub mod context;
pub mod error;
pub mod events;
pub mod feeds;
pub mod installed;
pub mod leader;
pub mod ledger_store;
pub mod metrics;
pub mod object;
pub mod object_states;
pub mod ownership;
pub mod pipeline;
pub mod policy;
pub mod reference;
pub mod run;
pub mod scope;
pub mod server;
pub mod shards;
pub mod status;
pub mod tag_rule;
pub mod targeted;
pub mod targets;
pub mod triggers;
pub mod verdict;
pub mod wiring;

pub use run::{RunOptions, run};
