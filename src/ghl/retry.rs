//! Retries: exponential backoff with jitter for idempotent requests that failed in a passing
//! way, and for 429 on any request (a rate-limited request was not processed). `Retry-After`
//! overrides the backoff when GHL sends it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use backon::{ExponentialBuilder, Retryable};

use super::error::{ErrorClass, GhlError, Result};
use super::metrics::GhlMetrics;
use super::request::{ApiRequest, ApiResponse};
use super::transport::Transport;

/// Delay before the first retry.
pub const MIN_DELAY: Duration = Duration::from_millis(500);
/// Longest delay between retries.
pub const MAX_DELAY: Duration = Duration::from_secs(30);
/// Retries after the first attempt.
pub const MAX_RETRIES: usize = 4;
/// Longest `Retry-After` honoured; longer requests are cut to this (the budget still waits).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);

/// When and how often to retry.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    pub min_delay: Duration,
    pub max_delay: Duration,
    pub max_retries: usize,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            min_delay: MIN_DELAY,
            max_delay: MAX_DELAY,
            max_retries: MAX_RETRIES,
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        Self {
            max_retries: 0,
            ..Self::default()
        }
    }

    /// Whether `error` on `request` may be retried. A create whose answer was lost may have
    /// happened, so only 429 (certainly not processed) is retried for non-idempotent requests.
    pub fn should_retry(&self, request: &ApiRequest, error: &GhlError) -> bool {
        match error.class() {
            ErrorClass::RateLimited => true,
            ErrorClass::Retryable => request.operation.is_idempotent(),
            ErrorClass::Terminal | ErrorClass::Auth | ErrorClass::NotFound => false,
        }
    }

    fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.max_retries)
            .with_jitter()
    }
}

/// Retries requests through the inner transport according to a [`RetryPolicy`].
pub struct Retrying<T> {
    inner: T,
    policy: RetryPolicy,
    metrics: Arc<GhlMetrics>,
}

impl<T> Retrying<T> {
    pub fn new(inner: T, policy: RetryPolicy, metrics: Arc<GhlMetrics>) -> Self {
        Self {
            inner,
            policy,
            metrics,
        }
    }
}

#[async_trait]
impl<T: Transport> Transport for Retrying<T> {
    async fn send(&self, request: &ApiRequest) -> Result<ApiResponse> {
        (|| self.inner.send(request))
            .retry(self.policy.backoff())
            .when(|error: &GhlError| self.policy.should_retry(request, error))
            .adjust(|error: &GhlError, next: Option<Duration>| {
                // Keep the backoff's verdict on whether to go on; let GHL say how long.
                next.map(|backoff| {
                    error
                        .retry_after()
                        .map(|asked| asked.min(MAX_RETRY_AFTER))
                        .unwrap_or(backoff)
                })
            })
            .notify(|error: &GhlError, delay: Duration| {
                self.metrics
                    .observe_retry(request.operation, error.category());
                tracing::debug!(
                    operation = %request.operation,
                    category = error.category(),
                    delay_ms = delay.as_millis() as u64,
                    "retrying GHL request"
                );
            })
            .await
    }
}
