//! Counters behind `GET /__sandbox/stats`: what clients asked of the GHL API (admin calls are
//! not counted), for tests and benchmarks.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};

#[derive(Debug, Default)]
pub struct Stats {
    next_index: AtomicU64,
    counts: Mutex<Counts>,
    pub webhooks_sent: AtomicU64,
    pub webhooks_failed: AtomicU64,
    /// Answered 429 and tried again.
    pub webhooks_retried: AtomicU64,
    /// Lost on purpose (the `webhook-drop` fault).
    pub webhooks_dropped: AtomicU64,
}

#[derive(Debug, Default)]
struct Counts {
    total: u64,
    by_operation: BTreeMap<String, u64>,
    by_status: BTreeMap<String, u64>,
    by_operation_status: BTreeMap<String, BTreeMap<String, u64>>,
    /// Per location (or agency, for Company tokens): the same counts.
    by_location: BTreeMap<String, LocationCounts>,
}

#[derive(Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct LocationCounts {
    total_requests: u64,
    by_operation: BTreeMap<String, u64>,
    rate_limited: u64,
}

impl Stats {
    /// The running number of the next GHL request (fault decisions are keyed by it).
    pub fn next_index(&self) -> u64 {
        self.next_index.fetch_add(1, Ordering::SeqCst)
    }

    /// Counts one answered request; `outcome` is the status code or `timeout` / `dropped`;
    /// `location` the location (or agency) whose budget it spent, once authenticated.
    pub fn record(&self, operation: &str, outcome: &str, location: Option<&str>) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.total += 1;
        *c.by_operation.entry(operation.to_owned()).or_default() += 1;
        *c.by_status.entry(outcome.to_owned()).or_default() += 1;
        *c.by_operation_status
            .entry(operation.to_owned())
            .or_default()
            .entry(outcome.to_owned())
            .or_default() += 1;
        if let Some(location) = location {
            let counts = c.by_location.entry(location.to_owned()).or_default();
            counts.total_requests += 1;
            *counts.by_operation.entry(operation.to_owned()).or_default() += 1;
            if outcome == "429" {
                counts.rate_limited += 1;
            }
        }
    }

    pub fn reset(&self) {
        *self.counts.lock().unwrap_or_else(|p| p.into_inner()) = Counts::default();
        self.webhooks_sent.store(0, Ordering::SeqCst);
        self.webhooks_failed.store(0, Ordering::SeqCst);
        self.webhooks_retried.store(0, Ordering::SeqCst);
        self.webhooks_dropped.store(0, Ordering::SeqCst);
    }

    pub fn to_json(&self, refresh_token_reuse: u64) -> Value {
        let c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        json!({
            "totalRequests": c.total,
            "byOperation": c.by_operation,
            "byStatus": c.by_status,
            "byOperationAndStatus": c.by_operation_status,
            "byLocation": c.by_location,
            "rateLimited": c.by_status.get("429").copied().unwrap_or(0),
            "refreshTokenReuse": refresh_token_reuse,
            "webhooks": {
                "sent": self.webhooks_sent.load(Ordering::SeqCst),
                "failed": self.webhooks_failed.load(Ordering::SeqCst),
                "retried": self.webhooks_retried.load(Ordering::SeqCst),
                "dropped": self.webhooks_dropped.load(Ordering::SeqCst),
            },
        })
    }
}
