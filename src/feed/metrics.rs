//! The change feed's metrics (`ghl_operator_feed_*`, labelled by result only): deliveries,
//! and the outboxes' writes and sizes.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

use super::outbox::OutboxStats;

/// Feed metrics (labels: result only).
#[derive(Clone, Debug)]
pub struct FeedMetrics {
    deliveries: Family<ResultLabel, Counter>,
    pub(super) latency: Histogram,
    pub(super) pending: Gauge,
    outbox_writes: Family<ResultLabel, Counter>,
    outbox_entries: Gauge,
    outbox_bytes: Gauge,
    outbox_oldest_age: Gauge<f64, AtomicU64>,
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
            outbox_writes: Family::default(),
            outbox_entries: Gauge::default(),
            outbox_bytes: Gauge::default(),
            outbox_oldest_age: Gauge::default(),
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
        sub.register(
            "outbox_writes",
            "Writes of the change feed's outboxes by result: written, conflict (another writer; merged and retried), fenced (not the holder), failed, full (a change refused: the webhook answered 429)",
            metrics.outbox_writes.clone(),
        );
        sub.register(
            "outbox_entries",
            "Accepted changes not yet delivered to every sink, over the outboxes this process holds",
            metrics.outbox_entries.clone(),
        );
        sub.register(
            "outbox_bytes",
            "Stored size of the outboxes this process holds",
            metrics.outbox_bytes.clone(),
        );
        sub.register(
            "outbox_oldest_age_seconds",
            "Age of the oldest entry over the outboxes this process holds (0: none)",
            metrics.outbox_oldest_age.clone(),
        );
        for result in ["written", "conflict", "fenced", "failed", "full"] {
            metrics
                .outbox_writes
                .get_or_create(&ResultLabel { result })
                .inc_by(0);
        }
        for result in ["delivered", "unchanged", "retried", "failed"] {
            metrics
                .deliveries
                .get_or_create(&ResultLabel { result })
                .inc_by(0);
        }
        metrics
    }

    pub(super) fn count_outbox(&self, result: &'static str) {
        self.outbox_writes
            .get_or_create(&ResultLabel { result })
            .inc();
    }

    /// One outbox went from `before` to `after`.
    pub(super) fn outbox_delta(&self, before: &OutboxStats, after: &OutboxStats) {
        let delta =
            |a: usize, b: usize| i64::try_from(b).unwrap_or(0) - i64::try_from(a).unwrap_or(0);
        self.outbox_entries
            .inc_by(delta(before.entries, after.entries));
        self.outbox_bytes.inc_by(delta(before.bytes, after.bytes));
    }

    /// The oldest entry over every outbox is `age` old.
    pub fn outbox_oldest(&self, age: std::time::Duration) {
        self.outbox_oldest_age.set(age.as_secs_f64());
    }

    pub(super) fn count(&self, result: &'static str) {
        self.deliveries.get_or_create(&ResultLabel { result }).inc();
    }
}
