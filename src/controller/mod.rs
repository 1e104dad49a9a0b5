//! The operator: one kube-runtime controller per kind, in four rooms by job.
//!
//! - [`reconcile`]: what one reconcile does. Policies and rules go through one
//!   [`pipeline`](reconcile::pipeline) (prepare → sync through the engine → a pure
//!   [`verdict`](reconcile::verdict) → status, Events and the next reconcile); connections go
//!   through the same shape (check → verdict → status). [`kinds`](reconcile::kinds) holds what
//!   is particular to each kind.
//! - [`registry`]: what the process knows of who serves whom and who owns what — the live GHL
//!   client of each connection, what every owner declares on each location, the shards this
//!   process holds, and the mappers that turn a change into the objects it makes reconcile.
//! - [`intake`]: what GHL's webhooks cause — the change feeds, targeted reconciles of the
//!   contacts they name, TagRules woken.
//! - [`runtime`]: the process — `ghl-operator run`, the controllers' wiring, Leases,
//!   the metrics and health server, backoff, locks and metrics.
//!
//! [`context::Context`] puts the parts together: a reconcile reads its connection from the
//! [`Registry`](registry::Registry), queues and feeds through [`Intake`](intake::Intake), and
//! is paced by the [`Runtime`](runtime::Runtime). `reconcile` never imports `runtime`, and
//! the kinds never import each other (`tests/layout.rs`).
//!
//! The words (Event, webhook, delivery, fence, declaration, yielded, release…) are defined
//! once in `docs/architecture.md`.

pub mod context;
pub mod error;
pub mod intake;
pub mod object;
pub mod reconcile;
pub mod registry;
pub mod runtime;

pub use runtime::run::{RunOptions, run};
