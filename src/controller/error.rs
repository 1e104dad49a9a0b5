//! Reconcile errors, classified once. Domain outcomes (invalid spec, connection not ready,
//! safety limits, rate limits) are handled inside the reconcilers and written to status; what
//! reaches [`error_policy`] is passing trouble, retried per object with backoff and jitter.

use std::sync::Arc;

use kube::runtime::controller::Action;

use super::context::Context;
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
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// A bounded label for metrics and Event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kubernetes",
            Error::Ghl(e) => e.category(),
            Error::State(_) => "state",
            Error::Other(_) => "other",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Retries a failed reconcile after a per-object exponential backoff with jitter.
pub fn error_policy(kind: &'static str, key: &str, error: &Error, ctx: &Arc<Context>) -> Action {
    let delay = ctx.backoff.failed(&format!("{kind}/{key}"));
    ctx.metrics.failed(kind, error.category());
    tracing::warn!(kind, object = key, category = error.category(), error = %error, retry_in_s = delay.as_secs(), "reconcile failed");
    Action::requeue(delay)
}
