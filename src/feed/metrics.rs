//! The change feed's metrics (`ghl_operator_feed_*`, labelled by result only).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Feed metrics (labels: result only).
#[derive(Clone, Debug)]
pub struct FeedMetrics {
    deliveries: Family<ResultLabel, Counter>,
    pub(super) latency: Histogram,
    pub(super) pending: Gauge,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

impl Default for FeedMetrics {
    fn default() -> Self {
        Self {
            deliveries: Family::default(),
            latency: Histogram::new(exponential_buckets(0.005, 2.0, 16)),
            pending: Gauge::default(),
        }
    }
}

impl FeedMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        let sub = registry.sub_registry_with_prefix("ghl_operator_feed");
        sub.register(
            "deliveries",
            "Change feed deliveries by result: delivered, unchanged (the sink had it), retried, failed",
            metrics.deliveries.clone(),
        );
        sub.register(
            "delivery_latency_seconds",
            "From a change reaching the operator (webhook, catch-up) to a sink accepting it",
            metrics.latency.clone(),
        );
        sub.register(
            "pending",
            "Contacts with a change not yet delivered, over all sinks",
            metrics.pending.clone(),
        );
        for result in ["delivered", "unchanged", "retried", "failed"] {
            metrics
                .deliveries
                .get_or_create(&ResultLabel { result })
                .inc_by(0);
        }
        metrics
    }

    pub(super) fn count(&self, result: &'static str) {
        self.deliveries.get_or_create(&ResultLabel { result }).inc();
    }
}
