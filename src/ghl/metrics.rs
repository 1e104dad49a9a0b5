//! Prometheus metrics of the GHL client. Labels are bounded: operation names, status classes,
//! error categories, budget window kinds, and GHL location ids (one per GhlConnection; never
//! contact data).

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::operation::Operation;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    operation: &'static str,
    status_class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RetryLabels {
    operation: &'static str,
    category: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BudgetLabels {
    location: String,
    window: &'static str,
}

fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

fn wait_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 4.0, 10))
}

/// The GHL client's metrics. `Default` gives an unregistered set (CLI runs, tests).
#[derive(Debug)]
pub struct GhlMetrics {
    requests: Family<RequestLabels, Counter>,
    durations: Family<OperationLabels, Histogram, fn() -> Histogram>,
    retries: Family<RetryLabels, Counter>,
    budget_wait: Histogram,
    budget_remaining: Family<BudgetLabels, Gauge>,
    budget_limit: Family<BudgetLabels, Gauge>,
}

impl Default for GhlMetrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            durations: Family::new_with_constructor(duration_histogram),
            retries: Family::default(),
            budget_wait: wait_histogram(),
            budget_remaining: Family::default(),
            budget_limit: Family::default(),
        }
    }
}

impl GhlMetrics {
    /// Creates the metrics and registers them under `ghl_`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        let sub = registry.sub_registry_with_prefix("ghl");
        sub.register(
            "requests",
            "Requests sent to GHL, by operation and status class (2xx, 4xx, 429, 5xx, transport)",
            metrics.requests.clone(),
        );
        sub.register(
            "request_duration_seconds",
            "Time from sending a request to GHL to its full answer",
            metrics.durations.clone(),
        );
        sub.register(
            "retries",
            "Requests retried, by operation and error category",
            metrics.retries.clone(),
        );
        sub.register(
            "budget_wait_seconds",
            "Time callers waited for request budget before sending",
            metrics.budget_wait.clone(),
        );
        sub.register(
            "budget_remaining",
            "Requests left in the location's budget as GHL last reported it (window: burst or daily)",
            metrics.budget_remaining.clone(),
        );
        sub.register(
            "budget_limit",
            "The location's limit as GHL last reported it (window: burst per interval, or daily)",
            metrics.budget_limit.clone(),
        );
        metrics
    }

    pub(crate) fn observe_request(
        &self,
        operation: Operation,
        status: Option<u16>,
        took: Duration,
    ) {
        let status_class = match status {
            None => "transport",
            Some(429) => "429",
            Some(s) if (200..300).contains(&s) => "2xx",
            Some(s) if (300..400).contains(&s) => "3xx",
            Some(s) if (400..500).contains(&s) => "4xx",
            Some(_) => "5xx",
        };
        self.requests
            .get_or_create(&RequestLabels {
                operation: operation.name(),
                status_class,
            })
            .inc();
        self.durations
            .get_or_create(&OperationLabels {
                operation: operation.name(),
            })
            .observe(took.as_secs_f64());
    }

    pub(crate) fn observe_retry(&self, operation: Operation, category: &'static str) {
        self.retries
            .get_or_create(&RetryLabels {
                operation: operation.name(),
                category,
            })
            .inc();
    }

    pub(crate) fn observe_budget_wait(&self, waited: Duration) {
        self.budget_wait.observe(waited.as_secs_f64());
    }

    /// What GHL last reported for a location: `(burst, daily)` remaining and limits.
    pub(crate) fn set_budget(
        &self,
        location: &str,
        remaining: (Option<u32>, Option<u32>),
        limits: (u32, u32),
    ) {
        let windows = [
            ("burst", remaining.0, limits.0),
            ("daily", remaining.1, limits.1),
        ];
        for (window, remaining, limit) in windows {
            let labels = BudgetLabels {
                location: location.to_owned(),
                window,
            };
            self.budget_limit
                .get_or_create(&labels)
                .set(i64::from(limit));
            if let Some(value) = remaining {
                self.budget_remaining
                    .get_or_create(&labels)
                    .set(i64::from(value));
            }
        }
    }

    /// Requests counted for an operation and status class (for tests and the CLI summary).
    pub fn request_count(&self, operation: Operation, status_class: &'static str) -> u64 {
        self.requests
            .get(&RequestLabels {
                operation: operation.name(),
                status_class,
            })
            .map(|c| c.get())
            .unwrap_or(0)
    }
}
