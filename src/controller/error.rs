//! Reconcile errors, classified once. What a sync runs into (invalid spec, connection not
//! ready, refused credentials, safety limits, rate limits, GHL or ledger trouble) is an
//! outcome with a verdict, written to status; what reaches [`error_policy`] is trouble writing
//! to Kubernetes itself (status, finalizers) or removing data on deletion, retried per object
//! with backoff and jitter.

use std::sync::Arc;

use kube::runtime::controller::Action;

use super::context::Context;
use super::object::ObjectKey;
use crate::engine::SyncError;
use crate::engine::state::StateError;
use crate::ghl::GhlError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Ghl(#[from] GhlError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// Deleting an object: some of what it owns could not be removed from GHL yet.
    #[error("{0} object(s) could not be removed from GHL; retrying")]
    Release(usize),
}

impl Error {
    /// A bounded label for metrics and Event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kubernetes",
            Error::Ghl(e) => e.category(),
            Error::State(_) => "state",
            Error::Sync(SyncError::Ghl(e)) => e.category(),
            Error::Sync(SyncError::State(_)) => "state",
            Error::Sync(SyncError::Apply(_)) => "apply",
            Error::Release(_) => "release",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Retries a failed reconcile after a per-object exponential backoff with jitter.
pub fn error_policy(key: &ObjectKey, error: &Error, ctx: &Arc<Context>) -> Action {
    let delay = ctx.backoff.failed(key);
    ctx.metrics.failed(key.kind, error.category());
    tracing::warn!(object = %key, category = error.category(), error = %error, retry_in_s = delay.as_secs(), "reconcile failed");
    Action::requeue(delay)
}
