//! Reconcile errors, classified once. What a sync runs into (invalid spec, connection not
//! ready, refused credentials, safety limits, rate limits, GHL or ledger trouble) is an
//! outcome with a verdict, written to status; what reaches [`error_policy`] is trouble writing
//! to Kubernetes itself (status, finalizers) or removing data on deletion, retried per object
//! with backoff and jitter.

use std::sync::Arc;

use kube::runtime::controller::Action;

use crate::controller::context::Context;
use crate::controller::object::ObjectKey;
use crate::engine::SyncError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// Deleting an object: some of what it owns could not be removed from GHL yet.
    #[error("{0} object(s) could not be removed from GHL; retrying")]
    Removal(usize),
}

impl Error {
    /// A bounded label for metrics and Event reasons: every error the controller sees maps
    /// here (a sync's error by [`SyncError::category`], which maps GHL's by their class).
    pub fn category(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kubernetes",
            Error::Sync(e) => e.category(),
            Error::Removal(_) => "removal",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Retries a failed reconcile after a per-object exponential backoff with jitter.
pub fn error_policy(key: &ObjectKey, error: &Error, ctx: &Arc<Context>) -> Action {
    let delay = ctx.runtime.backoff.failed(key);
    ctx.metrics.failed(key.kind, error.category());
    tracing::warn!(object = %key, category = error.category(), error = %error, retry_in_s = delay.as_secs(), "reconcile failed");
    Action::requeue(delay)
}
