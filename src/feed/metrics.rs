//! The change feed's metrics (`ghl_operator_feed_*`): deliveries by result, and the
//! outboxes' writes and sizes, over every feed; and per sink, labelled by the connection's
//! namespace and name and the sink's name (bounded: a connection has at most
//! [`crate::crd::export::MAX_SINKS`] sinks, and a sink's series go with it), deliveries by
//! result, whether it is failing and its backlog.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

use super::outbox::OutboxStats;

/// Feed metrics.
#[derive(Clone, Debug)]
pub struct FeedMetrics {
    deliveries: Family<ResultLabel, Counter>,
    sink_deliveries: Family<SinkResult, Counter>,
    sink_failing: Family<SinkLabels, Gauge>,
    sink_backlog: Family<SinkLabels, Gauge>,
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

/// One sink of one connection.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SinkLabels {
    namespace: String,
    connection: String,
    sink: String,
}

impl SinkLabels {
    pub fn new(namespace: &str, connection: &str, sink: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            connection: connection.to_owned(),
            sink: sink.to_owned(),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SinkResult {
    #[prometheus(flatten)]
    sink: SinkLabels,
    result: &'static str,
}

/// Per-sink delivery results (`rejected`: a 4xx answer, not retried).
const SINK_RESULTS: [&str; 5] = ["delivered", "unchanged", "retried", "failed", "rejected"];

impl Default for FeedMetrics {
    fn default() -> Self {
        Self {
            deliveries: Family::default(),
            sink_deliveries: Family::default(),
            sink_failing: Family::default(),
            sink_backlog: Family::default(),
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
            "Change feed deliveries by result: delivered, unchanged (the sink had it), retried, failed (given up after a day), rejected (the sink answered 4xx; not retried)",
            metrics.deliveries.clone(),
        );
        sub.register(
            "sink_deliveries",
            "Change feed deliveries by connection, sink and result (as ghl_operator_feed_deliveries)",
            metrics.sink_deliveries.clone(),
        );
        sub.register(
            "sink_failing",
            "1 while a sink cannot be sent to or its last answer was a failure (the connection's Exporting condition is False), else 0",
            metrics.sink_failing.clone(),
        );
        sub.register(
            "sink_backlog",
            "Contacts with a change not yet delivered to the sink",
            metrics.sink_backlog.clone(),
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
        for result in ["delivered", "unchanged", "retried", "failed", "rejected"] {
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

    pub(super) fn count_sink(&self, sink: &SinkLabels, result: &'static str) {
        self.sink_deliveries
            .get_or_create(&SinkResult {
                sink: sink.clone(),
                result,
            })
            .inc();
    }

    /// A sink's state now: failing or not, and its backlog. Its results start at 0.
    pub fn sink_state(&self, sink: &SinkLabels, failing: bool, backlog: u64) {
        self.sink_failing
            .get_or_create(sink)
            .set(i64::from(failing));
        self.sink_backlog
            .get_or_create(sink)
            .set(i64::try_from(backlog).unwrap_or(i64::MAX));
        for result in SINK_RESULTS {
            self.sink_deliveries
                .get_or_create(&SinkResult {
                    sink: sink.clone(),
                    result,
                })
                .inc_by(0);
        }
    }

    /// A sink (or its connection) is gone: so are its series.
    pub fn forget_sink(&self, sink: &SinkLabels) {
        self.sink_failing.remove(sink);
        self.sink_backlog.remove(sink);
        for result in SINK_RESULTS {
            self.sink_deliveries.remove(&SinkResult {
                sink: sink.clone(),
                result,
            });
        }
    }

    pub(super) fn count(&self, result: &'static str) {
        self.deliveries.get_or_create(&ResultLabel { result }).inc();
    }
}
